"""Writing a submission (``docs/submission-format.md``) atomically: maps, ``scores.csv``, ``submission.json``.

Everything is written into a temporary folder beside the target, which is renamed onto the
target only when complete: an interrupted run leaves no partial submission. An existing
submission at the target (a folder holding ``submission.json``) is replaced; any other
non-empty folder is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from threecad.atomic import atomic_folder
from threecad.errors import UsageError
from threecad.eval.format import (META_FILE, SCORES_FILE, image_key, map_relpath, meta_json_text,
                                  meta_record, scores_csv_text)

__all__ = ["SubmissionWriter", "map_key", "check_target"]

log = logging.getLogger(__name__)


def map_key(row: Any) -> str:
    """The submission key of a manifest row: ``<Category>/test/<folder>/<stem>``."""
    return image_key(row.category, row.folder, row.stem)


def check_target(out: str | Path) -> Path:
    """Refuse a target that exists and is not a submission (nothing is overwritten by accident)."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out} exists and is not a folder; choose another --out")
        if any(out.iterdir()) and not (out / META_FILE).is_file():
            raise UsageError(f"{out} is a non-empty folder that is not a submission; choose another --out "
                             f"(an existing submission there would be replaced)")
    return out


class SubmissionWriter:
    """Context manager that writes one submission folder atomically.

    Use ``add(row, amap)`` for every test image (``row``: a manifest row with ``category``,
    ``folder``, ``stem``; ``amap``: a 2-D array, saved as float16 ``.npy`` without pickle);
    the image score is the maximum of the map unless ``score`` is given. On a clean exit,
    ``scores.csv`` and ``submission.json`` (``meta`` plus ``format_version``) are written and the
    folder is renamed onto ``out``.
    """

    def __init__(self, out: str | Path, meta: dict[str, Any]) -> None:
        self.out = check_target(out)
        meta = dict(meta)
        meta.pop("format_version", None)
        self.meta = meta_record(meta.pop("method", self.out.name),
                                meta.pop("team", None), **meta)
        self.scores: dict[str, float] = {}
        self.tmp: Path | None = None

    def __enter__(self) -> "SubmissionWriter":
        self._publish = atomic_folder(self.out)  # one rename publishes it, with the umask's modes
        self.tmp = self._publish.__enter__()
        return self

    def add(self, row: Any, amap: np.ndarray, score: float | None = None) -> Path:
        """Save the map of one test image; return its path (inside the temporary folder)."""
        if self.tmp is None:
            raise RuntimeError("SubmissionWriter.add outside its 'with' block")
        amap = np.asarray(amap)
        if amap.ndim != 2 or not np.all(np.isfinite(amap)):
            raise ValueError(f"map of {map_key(row)} is not a finite 2-D array (shape {amap.shape})")
        target = self.tmp / map_relpath(row.category, row.folder, row.stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, amap.astype(np.float16), allow_pickle=False)
        value = float(amap.max()) if score is None else float(score)
        self.scores[map_key(row)] = value
        return target

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self.tmp is not None  # set by __enter__
        if exc_type is None:
            try:
                (self.tmp / SCORES_FILE).write_text(scores_csv_text(self.scores), encoding="utf-8")
                (self.tmp / META_FILE).write_text(meta_json_text(self.meta), encoding="utf-8")
            except BaseException as err:
                self._publish.__exit__(type(err), err, err.__traceback__)  # drops the temporary folder
                raise
            if self.out.exists():
                log.info("replacing the submission at %s", self.out)
        self._publish.__exit__(exc_type, exc, tb)  # publishes on success, removes the folder on error
