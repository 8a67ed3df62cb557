"""A synthetic submission for a dataset: realistic, imperfect anomaly maps.

Each map is the ground truth blurred (so boundaries are soft and small defects weak),
scaled by a random per-image strength, plus structured noise (smooth low-frequency
texture and a few false-positive blobs), computed at a model-like resolution and saved as
float16 ``.npy`` in the submission layout. Used by ``threecad demo`` and the tests; not a
model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from threecad.atomic import write_text_atomic
from threecad.regions import read_mask

from .format import META_FILE, map_relpath, meta_json_text, meta_record

__all__ = ["write_synthetic_submission"]


def _mask_union(paths, shape) -> np.ndarray:
    union = np.zeros(shape, np.float32)
    for p in paths:
        m = read_mask(p)
        if m.shape == shape:
            union = np.maximum(union, (m > 0).astype(np.float32))
    return union


def synthetic_map(mask: np.ndarray, rng: np.random.Generator, *, size: int = 256) -> np.ndarray:
    """One imperfect anomaly map (size x size, float16) for a native-size mask."""
    import cv2

    gt = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    signal = cv2.GaussianBlur(gt, (0, 0), rng.uniform(2.0, 6.0)) * rng.uniform(0.3, 1.2)
    coarse = rng.random((size // 16, size // 16)).astype(np.float32)
    noise = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * 0.35
    for _ in range(int(rng.integers(0, 3))):  # false-positive blobs
        blob = np.zeros((size, size), np.float32)
        cv2.circle(blob, (int(rng.integers(0, size)), int(rng.integers(0, size))), int(rng.integers(3, 12)),
                   1.0, -1)
        noise += cv2.GaussianBlur(blob, (0, 0), 4) * rng.uniform(0.2, 0.6)
    amap = signal + noise + rng.normal(0, 0.02, (size, size)).astype(np.float32)
    return cv2.GaussianBlur(amap, (0, 0), 1.0).astype(np.float16)


def write_synthetic_submission(manifest: Any, out: str | Path, *, seed: int = 0, size: int = 256,
                               method: str = "synthetic-demo") -> Path:
    """Write maps for every test image of ``manifest`` under ``out`` (submission layout)."""
    out = Path(out)
    test = manifest[manifest["split"] == "test"]
    for row in test.itertuples():
        key = int.from_bytes(hashlib.sha256(row.image_id.encode()).digest()[:8], "little")
        rng = np.random.default_rng([seed, key])  # per image, independent of order
        shape = (int(row.height), int(row.width))
        mask = _mask_union(row.mask_paths, shape) if row.label == "defect" else np.zeros(shape, np.float32)
        target = out / map_relpath(row.category, row.folder, row.stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, synthetic_map(mask, rng, size=size), allow_pickle=False)
    meta = meta_record(method, "threecad", description="ground truth blurred plus structured noise (not a model)")
    write_text_atomic(out / META_FILE, meta_json_text(meta))
    return out
