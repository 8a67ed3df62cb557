"""Hand-made per-patch features for PatchKNN.

Per pixel of the squashed RGB image: brightness (normalised per image by its median and
spread, so that exposure changes between parts do not count as anomalies), chroma (Lab a/b
minus the image's median), gradient magnitude and difference-of-Gaussians at several scales,
local contrast; then averaged over ``stride`` x ``stride`` patches.
"""

from __future__ import annotations

import numpy as np

from .config import PatchKNNConfig

__all__ = ["patch_features", "n_features"]


def n_features(config: PatchKNNConfig) -> int:
    """Length of a patch's feature vector."""
    return 4 + 2 * len(config.sigmas)


def patch_features(rgb: np.ndarray, config: PatchKNNConfig) -> np.ndarray:
    """Feature vectors of every patch of an image.

    Parameters
    ----------
    rgb : ndarray
        ``(S, S, 3)`` uint8 RGB image, ``S = config.image_size``.
    config : PatchKNNConfig

    Returns
    -------
    ndarray
        ``(S // stride, S // stride, n_features(config))`` float32.
    """
    import cv2

    size = config.image_size
    if rgb.shape != (size, size, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"expected a ({size}, {size}, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)  # uint8: 256 levels per channel
    grey_levels = _sorted_levels(lab[:, :, 0], 255.0)
    med = float(np.median(grey_levels))
    spread = float(np.percentile(grey_levels, 90) - np.percentile(grey_levels, 10))
    grey = (lab[:, :, 0].astype(np.float32) / 255.0 - med) / (spread + 0.05)
    chroma_med = np.array([np.median(_sorted_levels(lab[:, :, c], 1.0)) for c in (1, 2)], dtype=np.float32)
    chroma = cv2.GaussianBlur((lab[:, :, 1:].astype(np.float32) - chroma_med) / 32.0, (0, 0), 1.5)

    blurred = {s: cv2.GaussianBlur(grey, (0, 0), s) for s in dict.fromkeys((1.0, *config.sigmas))}
    chans = [blurred[1.0], chroma[:, :, 0], chroma[:, :, 1]]
    for s in config.sigmas:
        b = blurred[s]
        gx = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3)
        chans.append(np.sqrt(gx * gx + gy * gy) * s)       # scale-normalised gradient
        chans.append(b - cv2.GaussianBlur(b, (0, 0), 2.0 * s))  # blob response (DoG)
    mean = cv2.GaussianBlur(grey, (0, 0), 3.0)
    chans.append(np.sqrt(np.maximum(cv2.GaussianBlur(grey * grey, (0, 0), 3.0) - mean * mean, 0.0)))
    feats = np.stack(chans, axis=-1).astype(np.float32, copy=False)
    grid = size // config.stride
    return cv2.resize(feats, (grid, grid), interpolation=cv2.INTER_AREA).reshape(grid, grid, -1)


_LEVELS = np.arange(256, dtype=np.float32)


def _sorted_levels(channel: np.ndarray, scale: float) -> np.ndarray:
    """The values ``channel.astype(float32) / scale`` of a uint8 channel, sorted, from its histogram.

    ``np.median`` and ``np.percentile`` of this array equal those of the unsorted values (the
    same multiset of float32 numbers), at a fraction of the cost of partitioning them.
    """
    counts = np.bincount(channel.ravel(), minlength=256)
    return np.repeat(_LEVELS / np.float32(scale), counts)
