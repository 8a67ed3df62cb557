"""The teacher's pretrained weights: torchvision's ImageNet weights, a local file, or none.

* default: ``Wide_ResNet50_2_Weights.IMAGENET1K_V1`` through torchvision's own loading path
  (the torch hub cache, ``$TORCH_HOME/hub/checkpoints/``, downloaded there once when missing),
  read with ``weights_only=True``;
* ``FILE``: a state dict of wide_resnet50_2 on disk (e.g. that same ``.pth`` copied to an
  offline machine), read with ``weights_only=True``;
* ``"none"``: an untrained teacher, for tests and smoke runs only (results are marked so).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from threecad.errors import DataError, UsageError

from .model import TEACHER_PREFIXES

__all__ = ["NO_TEACHER", "teacher_state_dict", "hub_cache_file", "imagenet_weights"]

log = logging.getLogger(__name__)

NO_TEACHER = "none"


def imagenet_weights() -> Any:
    """torchvision's weight enum entry used by the teacher."""
    from torchvision.models import Wide_ResNet50_2_Weights

    return Wide_ResNet50_2_Weights.IMAGENET1K_V1


def hub_cache_file() -> Path:
    """Where torchvision keeps (or would download) the teacher's ImageNet weights."""
    url = imagenet_weights().url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _select(state: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise DataError(f"{source}: not a state dict of wide_resnet50_2")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    wanted = {k: v for k, v in state.items() if k.startswith(TEACHER_PREFIXES)}
    from torchvision.models import wide_resnet50_2

    need = {k: v.shape for k, v in wide_resnet50_2(weights=None).state_dict().items() if k.startswith(TEACHER_PREFIXES)}
    missing = sorted(set(need) - set(wanted))
    wrong = sorted(k for k in need if k in wanted and tuple(wanted[k].shape) != tuple(need[k]))
    if missing or wrong:
        detail = (f"{len(missing)} missing (e.g. {missing[0]})" if missing else "") + \
                 (f"{'; ' if missing else ''}{len(wrong)} with the wrong shape (e.g. {wrong[0]})" if wrong else "")
        raise DataError(f"{source}: not the weights of torchvision's wide_resnet50_2: {detail}")
    return {k: v.float() if v.is_floating_point() else v for k, v in wanted.items()}


def teacher_state_dict(spec: str | None, *, progress: bool = False) -> tuple[dict[str, torch.Tensor] | None, dict]:
    """The teacher's weights and a plain description of where they came from.

    Parameters
    ----------
    spec : str or None
        ``None``: torchvision's ImageNet weights (hub cache); ``"none"``: untrained; else a file.
    progress : bool
        Show torchvision's download progress (only when a download happens).

    Returns
    -------
    (dict or None, dict)
        The state dict of the kept layers (``None`` for an untrained teacher) and
        ``{"source": ..., "pretrained": bool}``.

    Raises
    ------
    UsageError
        The weights cannot be obtained (offline, no file); the message says how to get them.
    DataError
        A file is not a plain state dict of wide_resnet50_2 (or would need unpickling code).
    """
    if spec is not None and spec.strip().lower() == NO_TEACHER:
        log.warning("untrained teacher (--teacher-weights none): for tests and smoke runs only; "
                    "the results are marked as such and mean nothing")
        return None, {"source": "none (untrained)", "pretrained": False}
    if spec is not None:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"--teacher-weights {path}: no such file (expected torchvision's "
                             f"{os.path.basename(imagenet_weights().url)}, or 'none' for smoke runs)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            raise DataError(f"{path}: refused or unreadable as a plain state dict "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        return _select(state, str(path)), {"source": str(path), "pretrained": True}

    weights = imagenet_weights()
    cached = hub_cache_file()
    if not cached.is_file():
        log.warning("downloading the teacher's ImageNet weights (%s) into the torch hub cache %s",
                    weights.url, cached.parent)
    try:
        state = weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"cannot get the teacher's pretrained weights (torchvision wide_resnet50_2 IMAGENET1K_V1): {reason}. "
            f"Either let this machine download them once ({weights.url} into {cached}), or copy that file "
            f"from a machine with network access and pass --teacher-weights FILE (or place it at {cached}). "
            f"'--teacher-weights none' trains with an untrained teacher (tests and smoke runs only).") from None
    return _select(state, str(cached)), {"source": f"torchvision IMAGENET1K_V1 ({cached.name})", "pretrained": True}
