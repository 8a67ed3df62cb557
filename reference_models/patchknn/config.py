"""Settings of the PatchKNN baseline (plain values, JSON-serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["PatchKNNConfig"]


@dataclass(frozen=True)
class PatchKNNConfig:
    """PatchKNN settings.

    Attributes
    ----------
    image_size : int
        Images are squashed to ``image_size`` x ``image_size`` (the 3CAD protocol's grid).
    stride : int
        Patch size and step: features are averaged over ``stride`` x ``stride`` cells.
    sigmas : tuple of float
        Scales (pixels at ``image_size``) of the gradient and blob (difference-of-Gaussians) features.
    max_bank : int
        Most normal patches kept per category (a random subset, deterministic for ``seed``).
    k : int
        Neighbours averaged for a patch's score.
    search_eps : float
        0 (the default): exact neighbour distances. ``> 0``: an opt-in approximate search whose
        distances are at most ``1 + search_eps`` times the exact ones (faster; see
        :mod:`~threecad.reference_models.patchknn.search`).
    smooth_sigma : float
        Gaussian smoothing of the final map (pixels at ``image_size``), as in the 3CAD protocol.
    seed : int
        Seed of the bank subsampling.
    """

    image_size: int = 256
    stride: int = 4
    sigmas: tuple[float, ...] = (1.0, 2.0, 4.0)
    max_bank: int = 50_000
    k: int = 1
    search_eps: float = 0.0
    smooth_sigma: float = 4.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form (for ``submission.json``)."""
        d = asdict(self)
        d["sigmas"] = list(self.sigmas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PatchKNNConfig":
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "sigmas" in kw:
            kw["sigmas"] = tuple(float(s) for s in kw["sigmas"])
        return cls(**kw)
