"""Mask and heatmap files for the FiftyOne dataset (files, never arrays in the database).

Files live in a media folder (default ``<threecad cache>/fiftyone/media``), under the
dataset's name and the image's key::

    <media>/<dataset>/masks/<Category>/<split>/<folder>/<stem>.png          union of the masks, 0/255
    <media>/<dataset>/outlines/<Category>/<split>/<folder>/<stem>.png       its outline, 0/255
    <media>/<dataset>/heatmaps/<field>/<Category>/test/<folder>/<stem>.png  8-bit map, shared scale

Every file is written atomically (temporary name, then rename).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..paths import default_cache_dir

__all__ = ["default_media_dir", "mask_file", "heatmap_file", "write_png", "quantize"]


def default_media_dir() -> Path:
    """``<threecad cache>/fiftyone/media`` (see :func:`threecad.paths.default_cache_dir`)."""
    return default_cache_dir() / "fiftyone" / "media"


def _safe(name: str) -> str:
    """A dataset or field name as one path component."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def mask_file(media_dir: Path, dataset: str, image_id: str, *, kind: str = "masks") -> Path:
    """Where the ground-truth mask (``kind="masks"``) or its outline (``"outlines"``) of
    ``image_id`` goes."""
    return Path(media_dir) / _safe(dataset) / kind / f"{image_id}.png"


def heatmap_file(media_dir: Path, dataset: str, field: str, image_id: str) -> Path:
    """Where the heatmap of ``image_id`` for the prediction field ``field`` goes."""
    return Path(media_dir) / _safe(dataset) / "heatmaps" / _safe(field) / f"{image_id}.png"


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a 2-D uint8 array as a grey PNG, atomically (fast compression)."""
    import cv2

    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 array, got {array.dtype} of shape {array.shape}")
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint8 array
        raise OSError(f"cannot encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def quantize(amap: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``amap`` on the shared scale ``[lo, hi]`` as uint8 0..255 (values outside are clipped)."""
    a = np.asarray(amap, dtype=np.float32)
    span = float(hi) - float(lo)
    if not span > 0:
        return np.zeros(a.shape, np.uint8)
    scaled = (a - np.float32(lo)) * np.float32(255.0 / span)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
