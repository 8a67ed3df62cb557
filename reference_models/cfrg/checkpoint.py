"""CFRG checkpoints: tensors and plain values only, read with ``torch.load(weights_only=True)``.

A checkpoint is one dict: ``format`` (``"threecad-cfrg"``), ``format_version``, ``config`` (plain
:class:`CFRGConfig` values), ``teacher`` (state of the kept teacher layers, or ``None`` for an
untrained one), ``teacher_info`` (``source``, ``pretrained``), ``model`` (student, recovery and
segmentation head), ``selection`` (the model-selection rule and result), ``epoch``/``step``, and in
resumable ones (``last.pt``) ``optimizer``, ``scheduler`` and ``rng``. Files are written atomically.
A file that would need unpickling arbitrary objects (code) is refused, never executed.
"""

from __future__ import annotations

import logging
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from threecad.atomic import atomic_path
from threecad.errors import DataError, UsageError
from threecad.hashing import file_sha256  # re-exported

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_KEYS", "RESUME_KEYS", "save_checkpoint", "load_checkpoint",
           "file_sha256", "capture_rng", "restore_rng", "plain_scheduler_state", "restore_scheduler_state"]

log = logging.getLogger(__name__)

FORMAT = "threecad-cfrg"
FORMAT_VERSION = 1
MODEL_KEYS = ("config", "teacher", "model")  # what rebuilding the model needs (``model.pt``)
RESUME_KEYS = MODEL_KEYS + ("seed", "epoch", "step_in_epoch", "step", "selection", "optimizer", "scheduler",
                            "rng")  # what continuing a training run needs (``last.pt``)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus ``format`` keys) atomically with ``torch.save``."""
    path = Path(path)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def load_checkpoint(path: str | Path, *, need: tuple[str, ...] = (), mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``, on the CPU) and check its contents.

    Parameters
    ----------
    path : path
    need : tuple of str
        Keys that must be present (:data:`MODEL_KEYS` to predict, :data:`RESUME_KEYS` to resume).
        Every known key that is present is checked for its type, whether needed or not.
    mmap : bool
        Map the tensors from the file instead of reading them (cheap checks of large files;
        only for files in ``torch.save``'s zip format, others are read).

    Raises
    ------
    UsageError
        No such file.
    DataError
        The file needs unpickling objects other than tensors and plain values (a pickle with
        code is refused without running it), is unreadable, is not a CFRG checkpoint, lacks a
        needed key or holds a value of the wrong type (every such problem named, with the file).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint (train one with 'threecad train --model cfrg')")
    try:
        import zipfile

        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"{path}: refused: this file holds more than tensors and plain values (loading it "
                        f"could run code embedded in it), so it was not loaded. Only checkpoints written by "
                        f"'threecad train' are accepted. ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path}: not a CFRG checkpoint of threecad (no format '{FORMAT}')")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise DataError(f"{path}: checkpoint format {data.get('format_version')} is newer than this threecad "
                        f"reads ({FORMAT_VERSION}); update threecad")
    problems = _content_problems(data, need)
    if problems:
        raise DataError(f"{path}: not a usable CFRG checkpoint: {'; '.join(problems)} (was it written by "
                        f"'threecad train'?)")
    return data


def _is_state(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in value.items())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_selection(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("rule"), str)
            and isinstance(value.get("history", []), list)
            and (value.get("best_epoch") is None or _is_int(value.get("best_epoch")))
            and (value.get("best_value") is None or isinstance(value.get("best_value"), (int, float))))


_CHECKS = {  # key -> (test, what it must be)
    "teacher": (_is_state, "a dict of tensors"),
    "model": (_is_state, "a dict of tensors"),
    "teacher_info": (lambda v: isinstance(v, dict), "a dict"),
    "selection": (_is_selection, "a dict with rule, best_epoch, best_value and history"),
    "category": (lambda v: isinstance(v, str), "a string"),
    "seed": (_is_int, "an int"),
    "epoch": (_is_int, "an int"),
    "step_in_epoch": (_is_int, "an int"),
    "step": (_is_int, "an int"),
    "complete": (lambda v: isinstance(v, bool), "true or false"),
    "optimizer": (lambda v: isinstance(v, dict), "a dict"),
    "scheduler": (lambda v: isinstance(v, dict), "a dict"),
    "rng": (lambda v: isinstance(v, dict), "a dict"),
    "meta": (lambda v: isinstance(v, dict), "a dict"),
}


def _content_problems(data: dict[str, Any], need: tuple[str, ...]) -> list[str]:
    """Every missing needed key and every present key of the wrong type, as phrases."""
    from .config import CFRGConfig

    problems = [f"no {key!r}" for key in need if key not in data]
    if "config" in data:
        try:
            CFRGConfig.from_dict(data["config"])
        except (ValueError, UsageError) as exc:
            problems.append(f"bad 'config' ({exc})")
    for key, (test, what) in _CHECKS.items():
        if key in data and not test(data[key]):
            problems.append(f"{key!r} is not {what}")
    return problems


def capture_rng() -> dict[str, Any]:
    """Every random state a training run touches, as tensors and plain values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def plain_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """A scheduler's state with ``collections.Counter`` (MultiStepLR's milestones) as a plain dict."""
    return {k: dict(v) if k == "milestones" else v for k, v in state.items()}


def restore_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`plain_scheduler_state`."""
    from collections import Counter

    return {k: Counter(v) if k == "milestones" else v for k, v in state.items()}
