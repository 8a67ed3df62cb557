"""Public functional API: exact ranking metrics, numpy in, float or curve out.

Every function is exact (each distinct score is a threshold; ties as in scikit-learn)
and depends only on the order of the scores: nothing is rescaled, clipped or squashed.
Undefined values (one class absent) are NaN with an :class:`UndefinedMetricWarning`.

Image level::

    roc_auc(scores, labels)            average_precision(scores, labels)

Pixel level (maps and masks: arrays of shape (H, W) or (N, H, W), or sequences of 2-D
arrays of varying size; mask non-zero = anomalous; regions = 8-connected components)::

    pixel_metrics(maps, masks)  -> PixelResult (auroc, ap, aupro, per size class)
    aupro(maps, masks)          pro_curve(maps, masks)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
import numpy as np

from .curves import (PrCurve, ProCurve, RocCurve, UndefinedMetricWarning, average_precision_from_counts,
                     pr_curve_from_counts, pro_curve_from_counts, roc_auc_from_counts,
                     roc_curve_from_counts)
from .engine import PositiveIndex, order_keys
from .pixels import PixelResult, PixelStats, extract_positives

__all__ = [
    "UndefinedMetricWarning",
    "roc_auc",
    "average_precision",
    "roc_curve",
    "pr_curve",
    "pixel_metrics",
    "aupro",
    "pro_curve",
    "PixelResult",
    "pixel_stats",
]


def _binary(scores, labels):
    scores = np.asarray(scores).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores has {scores.size} values but labels {labels.size}")
    if scores.dtype.kind not in "fiub":
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}")
    if scores.dtype.kind == "f" and not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    positive = labels > 0 if labels.dtype != np.bool_ else labels
    index = PositiveIndex(order_keys(scores[positive]))
    pos_count = np.bincount(index.positions(order_keys(scores[positive])), minlength=index.size)
    neg = index.empty_counts()
    index.count(scores[~positive], neg)
    return index, pos_count.astype(np.int64), neg


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Exact area under the ROC curve; equals ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Higher = more anomalous.
    labels : ndarray of shape (n,)
        1 (or True) = anomalous.
    """
    _, pos_count, neg = _binary(scores, labels)
    return roc_auc_from_counts(pos_count, neg)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Exact average precision; equals ``sklearn.metrics.average_precision_score``."""
    _, pos_count, neg = _binary(scores, labels)
    return average_precision_from_counts(pos_count, neg)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> RocCurve:
    """ROC curve vertices (from (0, 0) to (1, 1)), thresholds decreasing."""
    index, pos_count, neg = _binary(scores, labels)
    return roc_curve_from_counts(index.values, pos_count, neg)


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> PrCurve:
    """Precision and recall at each distinct score of a positive, thresholds decreasing."""
    index, pos_count, neg = _binary(scores, labels)
    return pr_curve_from_counts(index.values, pos_count, neg)


def _pairs(maps, masks) -> list[tuple[np.ndarray, np.ndarray]]:
    def as_list(x):
        if isinstance(x, np.ndarray):
            if x.ndim == 2:
                return [x]
            if x.ndim == 3:
                return list(x)
            raise ValueError(f"expected arrays of shape (H, W) or (N, H, W), got {x.shape}")
        return [np.asarray(a) for a in x]

    a, b = as_list(maps), as_list(masks)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} maps but {len(b)} masks")
    for i, (m, g) in enumerate(zip(a, b)):
        if m.ndim != 2 or m.shape != g.shape:
            raise ValueError(f"image {i}: map shape {m.shape} and mask shape {g.shape} must be equal and 2-D")
        if m.dtype.kind not in "fiub":
            raise TypeError(f"image {i}: map dtype {m.dtype} is not real")
        if m.dtype.kind == "f" and not np.isfinite(m).all():
            raise ValueError(f"image {i}: map contains NaN or infinite values")
    return list(zip(a, b))


def pixel_stats(maps, masks, *, workers: int | None = None) -> PixelStats:
    """Build the two-pass :class:`PixelStats` of ``maps``/``masks`` (all in group 0)."""
    pairs = _pairs(maps, masks)
    stats = PixelStats()
    positives = [extract_positives(m, g) for m, g in pairs]
    for pos in positives:
        stats.add_positives(pos)
    stats.finalize_positives()
    workers = max(1, min(workers or os.cpu_count() or 1, len(pairs)))
    chunks = [list(range(i, len(pairs), workers)) for i in range(workers)]

    def run(chunk):
        tally = stats.new_tally()
        for i in chunk:
            stats.add_negatives(tally, pairs[i][0], positives[i].flat_index)
        return tally

    if workers == 1:
        stats.merge(run(chunks[0]))
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for tally in pool.map(run, chunks):
                stats.merge(tally)
    return stats


def pixel_metrics(maps, masks, *, fpr_limit: float = 0.3, workers: int | None = None) -> PixelResult:
    """P-AUROC, P-AP and AUPRO (MVTec AD definition) pooled over all pixels, exact.

    Parameters
    ----------
    maps : ndarray of shape (N, H, W) or (H, W), or sequence of 2-D arrays
        Anomaly scores.
    masks : same shapes as ``maps``
        Ground truth, non-zero = anomalous; regions are 8-connected components per image.
    fpr_limit : float
        AUPRO integration limit (the area is divided by it).
    workers : int, optional
        Threads for the normal-pixel pass (default: all CPUs).
    """
    return pixel_stats(maps, masks, workers=workers).compute(fpr_limit=fpr_limit)


def aupro(maps, masks, *, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD definition), exact."""
    return pixel_metrics(maps, masks, fpr_limit=fpr_limit).aupro


def pro_curve(maps, masks) -> ProCurve:
    """The exact PRO curve (FPR ascending) of ``maps`` against ``masks``."""
    stats = pixel_stats(maps, masks)
    assert stats.index is not None
    g = 0
    k = stats.index.size
    weight = stats.pos_weight[g].sum(axis=0) if g in stats.pos_weight else np.zeros(k)
    neg = stats.negatives.get(g) or stats.index.empty_counts()
    return pro_curve_from_counts(stats.index.values, weight, int(stats.regions.get(g, np.zeros(3)).sum()), neg)

