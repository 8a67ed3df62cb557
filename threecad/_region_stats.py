"""Numba kernel of :func:`threecad.regions.label_regions` (imported on first use: numba is heavy)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def region_stats(labels, nonzero, width, n):
    """Per region ``1..n``: ``x, y, width, height, area``; shape (n, 5), int64.

    Parameters
    ----------
    labels : ndarray of shape (H * W,), int32
        Region labels, raveled.
    nonzero : ndarray of shape (p,), int64
        Flat indices of the labelled (non-zero) pixels: only these are visited.
    width : int
        ``W``.
    n : int
        Number of regions.
    """
    x0 = np.full(n, width, np.int64)
    y0 = np.full(n, labels.size, np.int64)
    x1 = np.full(n, -1, np.int64)
    y1 = np.full(n, -1, np.int64)
    area = np.zeros(n, np.int64)
    for p in nonzero:
        r = labels[p] - 1
        y = p // width
        x = p - y * width
        area[r] += 1
        x0[r] = min(x0[r], x)
        x1[r] = max(x1[r], x)
        y0[r] = min(y0[r], y)
        y1[r] = max(y1[r], y)
    stats = np.empty((n, 5), np.int64)
    for r in range(n):
        stats[r, 0] = x0[r]
        stats[r, 1] = y0[r]
        stats[r, 2] = x1[r] - x0[r] + 1
        stats[r, 3] = y1[r] - y0[r] + 1
        stats[r, 4] = area[r]
    return stats
