"""Public functional API: exact ranking metrics, numpy in, float or curve out.

Every function takes the truth first and the scores second, as scikit-learn does
(``y_true, y_score``; at pixel level ``masks, maps``). Every function is exact (each
distinct score is a threshold; ties as in scikit-learn) and depends only on the order of
the scores: nothing is rescaled, clipped or squashed. An area whose last floating-point
rounding leaves [0, 1] is clipped back to it. Undefined values (one class absent) are NaN
with an :class:`UndefinedMetricWarning`. Truth that is not binary (e.g. the arguments
swapped: continuous "labels", binary "scores") raises :class:`ValueError`.

Image level::

    roc_auc(y_true, y_score)           average_precision(y_true, y_score)
    roc_curve(y_true, y_score)         pr_curve(y_true, y_score)

Pixel level (masks and maps: arrays of shape (H, W) or (N, H, W), or sequences of 2-D
arrays of varying size; mask non-zero = anomalous; regions = 8-connected components)::

    pixel_metrics(masks, maps) -> PixelResult (auroc, ap, aupro, per size class)
    aupro(masks, maps)         pro_curve(masks, maps)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .curves import (PrCurve, ProCurve, RocCurve, ThresholdCounts, UndefinedMetricWarning, average_precision_from,
                     pr_curve_from, pro_curve_from, roc_auc_from, roc_curve_from)
from .engine import NonFiniteScoresError, PositiveIndex, distinct_positions, flat_values, order_keys
from .pixels import PixelResult, PixelStats, extract_positives

__all__ = [
    "UndefinedMetricWarning",
    "threshold_counts",
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


def _check_binary_truth(truth: np.ndarray, what: str) -> np.ndarray:
    """``truth > 0`` as bool, after checking that ``truth`` is binary.

    Binary: boolean, or at most two distinct values of which at most one is positive
    (``{0, 1}``, ``{-1, 1}``, ``{0, 255}``...). One compiled pass checks and binarises
    (:func:`_binary_scan`); the messages are built only for truth that fails.
    """
    if truth.dtype == np.bool_:
        return truth
    if truth.dtype.kind not in "fiu":
        raise TypeError(f"{what} must be boolean or numbers, got dtype {truth.dtype}")
    flat = flat_values(truth)
    positive = np.empty(flat.size, np.bool_)
    if not _binary_scan(flat, positive):
        if truth.dtype.kind == "f" and not np.isfinite(truth).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        raise ValueError(
            f"{what} must be binary (0 = normal, one positive value = anomalous), got values such as "
            f"{np.unique(truth.reshape(-1)[:4096])[:5].tolist()}: are the arguments swapped? The truth "
            "comes first: (y_true, y_score), or (masks, maps) at pixel level")
    return positive.reshape(truth.shape)


@njit(nogil=True, cache=True)
def _binary_scan(flat, positive):
    """``positive[i] = flat[i] > 0``; False when ``flat`` is not binary (a third distinct
    value, a second positive one, NaN or an infinity), else True. The second value is found
    first, so that the pass over every value has no branch (vector instructions)."""
    n = flat.size
    if n == 0:
        return True
    a = flat[0]
    b = a
    for i in range(n):
        if flat[i] != a:
            b = flat[i]
            break
    other = 0
    for i in range(n):
        x = flat[i]
        positive[i] = x > 0
        other |= (x != a) & (x != b)
    if other or not (a - a == 0 and b - b == 0):  # NaN or infinite: x - x is NaN for both
        return False
    return not (a != b and a > 0 and b > 0)


def _check_scores(scores: np.ndarray, what: str) -> None:
    if scores.dtype.kind not in "fiub":
        raise TypeError(f"{what} must be real numbers, got dtype {scores.dtype}")
    if scores.dtype.kind == "f" and not np.isfinite(scores).all():
        raise ValueError(f"{what} contains NaN or infinite values")


def threshold_counts(y_true, y_score) -> ThresholdCounts:
    """Positives and negatives at or above every distinct positive score (exact).

    The one count that every curve and area of this module reads (the role of
    scikit-learn's ``_binary_clf_curve``).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary truth: 0 (or False) = normal, a positive value (or True) = anomalous.
    y_score : array-like of shape (n,)
        Scores, higher = more anomalous; no NaN.

    Returns
    -------
    ThresholdCounts
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_score = np.asarray(y_score).reshape(-1)
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_score {y_score.size}")
    positive = _check_binary_truth(y_true, "y_true")
    _check_scores(y_score, "y_score")
    distinct, positions = distinct_positions(order_keys(y_score[positive]))
    index = PositiveIndex(distinct, distinct=True)
    pos_count = np.bincount(positions, minlength=index.size).astype(np.int64)
    neg = index.empty_counts()
    index.count(y_score[~positive], neg)
    return ThresholdCounts.build(index.values, pos_count, neg)


def roc_auc(y_true, y_score) -> float:
    """Exact area under the ROC curve; equals ``sklearn.metrics.roc_auc_score(y_true, y_score)``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary truth, 1 (or True) = anomalous.
    y_score : array-like of shape (n,)
        Scores, higher = more anomalous.
    """
    return roc_auc_from(threshold_counts(y_true, y_score))


def average_precision(y_true, y_score) -> float:
    """Exact average precision; equals ``sklearn.metrics.average_precision_score(y_true, y_score)``."""
    return average_precision_from(threshold_counts(y_true, y_score))


def roc_curve(y_true, y_score) -> RocCurve:
    """ROC curve vertices (from (0, 0) to (1, 1)), thresholds decreasing.

    The vertices are the corners of scikit-learn's ``roc_curve`` (``drop_intermediate``)
    plus points on its segments.
    """
    return roc_curve_from(threshold_counts(y_true, y_score))


def pr_curve(y_true, y_score) -> PrCurve:
    """Precision and recall at each distinct score of a positive, thresholds decreasing.

    These are the points of scikit-learn's ``precision_recall_curve`` where the recall
    changes (the points average precision sums over).
    """
    return pr_curve_from(threshold_counts(y_true, y_score))


def _pairs(masks, maps) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(map, mask)`` per image, shapes and dtypes checked (the values are checked per image,
    in the threads, by :func:`_checked_positives` and the counting engine)."""
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
        raise ValueError(f"{len(b)} masks but {len(a)} maps")
    for i, (m, g) in enumerate(zip(a, b)):
        if m.ndim != 2 or m.shape != g.shape:
            raise ValueError(f"image {i}: mask shape {g.shape} and map shape {m.shape} must be equal and 2-D")
        if m.dtype.kind not in "fiub":
            raise TypeError(f"image {i}: the map must be real numbers, got dtype {m.dtype}")
    return list(zip(a, b))


def _checked_positives(i: int, amap: np.ndarray, mask: np.ndarray):
    """The anomalous pixels of image ``i`` after checking its mask (binary) and their scores (finite)."""
    pos = extract_positives(amap, _check_binary_truth(mask, f"image {i}: the mask"))
    if amap.dtype.kind == "f" and not np.isfinite(amap.reshape(-1)[pos.flat_index]).all():
        raise ValueError(f"image {i}: the map contains NaN or infinite values")
    return pos


def pixel_stats(masks, maps, *, workers: int | None = None) -> PixelStats:
    """Build the two-pass :class:`PixelStats` of ``masks``/``maps`` (all in group 0).

    Every image is checked (binary mask, finite scores) in the threads that read it.
    """
    pairs = _pairs(masks, maps)
    stats = PixelStats()
    workers = max(1, min(workers or os.cpu_count() or 1, len(pairs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # pass 1 in runs of images: a task per image cost as much as checking a 256x256 one
        run_of = max(1, len(pairs) // (8 * workers))

        def check_run(first):
            return [_checked_positives(i, *pairs[i]) for i in range(first, min(first + run_of, len(pairs)))]

        positives = [pos for run in pool.map(check_run, range(0, len(pairs), run_of)) for pos in run]
        for pos in positives:
            stats.add_positives(pos)
        stats.finalize_positives()
        chunks = [list(range(i, len(pairs), workers)) for i in range(workers)]

        def run(chunk):
            tally = stats.new_tally()
            for i in chunk:
                try:
                    stats.add_negatives(tally, pairs[i][0], positives[i].flat_index)
                except NonFiniteScoresError:
                    raise ValueError(f"image {i}: the map contains NaN or infinite values") from None
            tally.flush()
            return tally

        for tally in pool.map(run, chunks):
            stats.merge(tally)
    return stats


def pixel_metrics(masks, maps, *, fpr_limit: float = 0.3, workers: int | None = None) -> PixelResult:
    """P-AUROC, P-AP and AUPRO (MVTec AD definition) pooled over all pixels, exact.

    Parameters
    ----------
    masks : ndarray of shape (N, H, W) or (H, W), or sequence of 2-D arrays
        Ground truth: 0 = normal, one non-zero value (or True) = anomalous; regions are
        8-connected components per image.
    maps : same shapes as ``masks``
        Anomaly scores (any real dtype, no NaN).
    fpr_limit : float
        AUPRO integration limit (the area is divided by it).
    workers : int, optional
        Threads (default: all CPUs).
    """
    return pixel_stats(masks, maps, workers=workers).compute(fpr_limit=fpr_limit)


def aupro(masks, maps, *, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD definition), exact."""
    return pixel_metrics(masks, maps, fpr_limit=fpr_limit).aupro


def pro_curve(masks, maps) -> ProCurve:
    """The exact PRO curve (FPR ascending) of ``maps`` against ``masks``."""
    stats = pixel_stats(masks, maps)
    assert stats.index is not None
    return pro_curve_from(stats.total().threshold_counts(stats.index.values))
