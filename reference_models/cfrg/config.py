"""Every setting of the CFRG reference model, with the 3CAD paper's defaults.

Source of the defaults: the 3CAD paper (Yang, Xing et al., AAAI 2025) and its public code, as
summarised in ``shared/3cad_facts.md`` ("The CFRG model"). Plain values only, so a config
travels in a checkpoint (``weights_only=True``) and in ``submission.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from threecad.errors import UsageError

__all__ = ["CFRGConfig", "IMAGENET_MEAN", "IMAGENET_STD", "TEACHER_CHANNELS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TEACHER_CHANNELS = (256, 512, 1024)  # wide_resnet50_2 layer1-3 outputs, at 1/4, 1/8, 1/16 of the input


@dataclass(frozen=True)
class CFRGConfig:
    """CFRG settings (paper defaults unless noted).

    Model
        ``image_size`` input side (images squashed, no crop); ``student_blocks`` indices of
        EfficientNet-B0's ``features`` whose outputs are the student's three scales (1/4, 1/8,
        1/16); ``bottleneck_blocks`` bottleneck blocks in the recovery branch's fusion stage;
        ``decoder_blocks`` de-ResNet blocks per decoder stage (coarse to fine, like ResNet-50's
        6, 4, 3 reversed as 3, 4, 6); ``recovery_width`` width factor of the recovery branch's
        bottleneck blocks (2: wide, like the teacher); ``seg_channels`` width of the segmentation decoder;
        ``seg_detach`` whether the segmentation head's inputs are detached (the head then learns
        from its own loss only, the branches from theirs).
    Synthetic anomalies
        ``perlin_scale_max`` Perlin grid of 2**a x 2**b cells, a, b uniform in [0, max);
        ``perlin_threshold`` mask threshold; ``beta_max`` blend weight of the original image
        in [0, beta_max); ``anomaly_prob`` share of training images that get an anomaly (1: every
        image, as in the paper).
    Losses
        ``w_ts``, ``w_rec``, ``w_seg`` weights (1 each).
    Recipe
        Adam ``lr`` with ``betas``; ``batch_size``; ``epochs``; LR x ``lr_gamma`` at
        ``lr_milestones``; ``amp`` bf16 autocast on CUDA; ``channels_last`` on CUDA.
    Inference
        ``smooth_sigma`` Gaussian sigma (pixels at ``image_size``).
    Selection
        ``val_every`` validate every N epochs (when a validation split is given); ``val_seed``
        seed of the validation set's synthetic anomalies.
    """

    image_size: int = 256
    student_blocks: tuple[int, int, int] = (2, 3, 5)
    bottleneck_blocks: int = 3
    decoder_blocks: tuple[int, int, int] = (3, 4, 6)
    recovery_width: int = 2
    seg_channels: tuple[int, int, int] = (256, 128, 64)
    seg_detach: bool = True
    perlin_scale_max: int = 6
    perlin_threshold: float = 0.5
    beta_max: float = 0.8
    anomaly_prob: float = 1.0
    w_ts: float = 1.0
    w_rec: float = 1.0
    w_seg: float = 1.0
    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 32
    epochs: int = 50
    lr_milestones: tuple[int, ...] = (40, 45)
    lr_gamma: float = 0.2
    amp: bool = True
    channels_last: bool = True
    smooth_sigma: float = 4.0
    val_every: int = 10
    val_seed: int = 12345
    checkpoint_every: int = 5

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 16:
            raise UsageError(f"image_size must be a multiple of 16 and at least 32, got {self.image_size}")
        if self.batch_size < 1 or self.epochs < 1:
            raise UsageError(f"batch_size and epochs must be positive, got {self.batch_size}, {self.epochs}")
        if not 0.0 <= self.beta_max < 1.0:
            raise UsageError(f"beta_max must be in [0, 1), got {self.beta_max}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form (lists for tuples): safe in a ``weights_only`` checkpoint and in JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CFRGConfig":
        """Inverse of :meth:`to_dict`; unknown keys are ignored (newer checkpoints), missing ones
        take their defaults.

        Raises
        ------
        ValueError
            ``d`` is not a dict, or a value has the wrong type (each setting has the type of its
            default: bool, int, float (an int is accepted), or a list/tuple of those).
        UsageError
            A value is out of range (see the class's checks).
        """
        if not isinstance(d, dict):
            raise ValueError(f"the config is a {type(d).__name__}, not a dict of settings")
        defaults = cls()
        kw: dict[str, Any] = {}
        problems = []
        for f in fields(cls):
            if f.name in d:
                try:
                    kw[f.name] = _typed(f.name, d[f.name], getattr(defaults, f.name))
                except ValueError as exc:
                    problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**kw)

    def with_overrides(self, **overrides: Any) -> "CFRGConfig":
        """A copy with the given settings changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _typed(name: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (tuples element by element)."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default) and name != "lr_milestones":
            raise ValueError(f"config setting {name!r} must be a list like {list(default)}, got {value!r}")
        return tuple(_typed(name, v, default[0] if default else 0) for v in value)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    if not ok:
        kind = {bool: "true or false", int: "an integer"}.get(type(default), "a number")
        raise ValueError(f"config setting {name!r} must be {kind}, got {value!r}")
    return value
