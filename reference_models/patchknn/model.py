"""The PatchKNN model of one category: a bank of normal patches and an exact nearest-neighbour search."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from threecad.errors import DataError
from threecad.parallel import thread_map

from ..images import read_rgb
from .config import PatchKNNConfig
from .features import patch_features
from .search import PatchIndex

__all__ = ["PatchKNN"]

log = logging.getLogger(__name__)


class PatchKNN:
    """Nearest-neighbour patch model of one category.

    ``fit`` reads the normal (``train/good``) images, keeps a random subset of their patch
    features (standardised per feature) and indexes them (:class:`~.search.PatchIndex`);
    ``anomaly_map`` scores a test image.
    """

    def __init__(self, config: PatchKNNConfig | None = None) -> None:
        self.config = config or PatchKNNConfig()
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.bank: np.ndarray | None = None
        self._index = None

    def fit(self, image_paths: Sequence[str | Path], *, workers: int | None = None,
            progress: bool = False) -> "PatchKNN":
        """Build the bank from normal images.

        Parameters
        ----------
        image_paths : sequence of path
            The category's normal training images (at least one).
        workers : int, optional
            Threads decoding images (default: all CPUs).
        progress : bool
            Report the feature extraction's progress (:func:`threecad.progress.progress`).
        """
        if not image_paths:
            raise DataError("PatchKNN needs at least one normal training image (train/good is empty)")
        feats = thread_map(self.image_features, list(image_paths), workers=workers, progress=progress,
                           desc="PatchKNN fit", unit="img")
        return self.fit_features(feats)

    def image_features(self, path: str | Path) -> np.ndarray:
        """The patch features of one image file (decoded and squashed as the config says).

        Returns
        -------
        ndarray
            ``(G, G, n_features)`` float32 (:func:`~.features.patch_features`).
        """
        return patch_features(read_rgb(path, self.config.image_size), self.config)

    def fit_features(self, feats: Sequence[np.ndarray]) -> "PatchKNN":
        """Build the bank from the patch features of normal images (:meth:`image_features`).

        Parameters
        ----------
        feats : sequence of ndarray
            One ``(G, G, n_features)`` array per normal image, in a fixed order (the bank's
            random subset depends on it).
        """
        if not len(feats):
            raise DataError("PatchKNN needs at least one normal training image (train/good is empty)")
        bank = np.concatenate([f.reshape(-1, f.shape[-1]) for f in feats])
        self.mean = bank.mean(axis=0)
        self.scale = bank.std(axis=0) + 1e-3
        bank = (bank - self.mean) / self.scale
        if len(bank) > self.config.max_bank:
            rng = np.random.default_rng(self.config.seed)
            bank = bank[np.sort(rng.choice(len(bank), self.config.max_bank, replace=False))]
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        if not 1 <= self.config.k <= len(self.bank):
            raise DataError(f"PatchKNN: k={self.config.k} neighbours asked for but the bank holds "
                            f"{len(self.bank)} patches")
        self._index = PatchIndex(self.bank)
        log.info("PatchKNN: %d normal images, bank of %d patches x %d features",
                 len(feats), len(self.bank), self.bank.shape[1])
        return self

    def anomaly_map(self, rgb: np.ndarray) -> np.ndarray:
        """The anomaly map of one image.

        Parameters
        ----------
        rgb : ndarray
            ``(S, S, 3)`` uint8 RGB (see :func:`reference_models.images.read_rgb`).

        Returns
        -------
        ndarray
            ``(S, S)`` float32, higher = more anomalous (Gaussian-smoothed patch distances).
        """
        import cv2

        if self._index is None:
            raise RuntimeError("PatchKNN.anomaly_map before fit")
        f = patch_features(rgb, self.config)
        grid = f.shape[0]
        q = (f.reshape(-1, f.shape[-1]) - self.mean) / self.scale  # float32, rows in raster order
        dist = self._index.kneighbors_distance(q, self.config.k, eps=self.config.search_eps)
        patch = dist.mean(axis=1).reshape(grid, grid).astype(np.float32)
        size = self.config.image_size
        amap = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
        if self.config.smooth_sigma > 0:
            amap = cv2.GaussianBlur(amap, (0, 0), self.config.smooth_sigma)
        return amap
