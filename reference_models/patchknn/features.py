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
    if rgb.shape != (size, size, 3):
        raise ValueError(f"expected a ({size}, {size}, 3) image, got {rgb.shape}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    grey = lab[:, :, 0] / 255.0
    med = float(np.median(grey))
    spread = float(np.percentile(grey, 90) - np.percentile(grey, 10))
    grey = (grey - med) / (spread + 0.05)
    chroma = lab[:, :, 1:] - np.median(lab[:, :, 1:].reshape(-1, 2), axis=0)
    chroma = cv2.GaussianBlur(chroma / 32.0, (0, 0), 1.5)

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
