"""Exact ROC, precision-recall and PRO curves and their areas, from engine counts.

Inputs are per distinct positive value ``U[i]`` (ascending): the positive count
``pos_count[i]``, the PRO weight ``pos_weight[i]`` (sum over those pixels of
``1 / area of their region``), and the normal-pixel counts of
:class:`eval.engine.NegativeCounts`. Thresholds run from high to low; a pixel is flagged
when its score is ``>= t``. Ties move both coordinates at once (a diagonal step), as in
scikit-learn and the MVTec AD evaluation.

Undefined metrics (no positives, no negatives, no regions) are NaN with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .engine import NegativeCounts

__all__ = [
    "UndefinedMetricWarning",
    "RocCurve",
    "PrCurve",
    "ProCurve",
    "roc_auc_from_counts",
    "average_precision_from_counts",
    "aupro_from_counts",
    "roc_curve_from_counts",
    "pr_curve_from_counts",
    "pro_curve_from_counts",
]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data (e.g. one class absent); its value is NaN."""


def _undefined(name: str, why: str) -> float:
    warnings.warn(f"{name} is undefined ({why}); reported as NaN", UndefinedMetricWarning, stacklevel=3)
    return float("nan")


@dataclass(frozen=True)
class RocCurve:
    """ROC curve vertices, thresholds decreasing. Shapes: (n,) each."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class PrCurve:
    """Precision and recall at each distinct positive score, thresholds decreasing."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class ProCurve:
    """PRO curve vertices (FPR ascending, thresholds decreasing), starting at (0, 0)."""

    fpr: np.ndarray
    pro: np.ndarray
    thresholds: np.ndarray


def roc_auc_from_counts(pos_count: np.ndarray, neg: NegativeCounts, *, name: str = "AUROC") -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half), exact.

    Parameters
    ----------
    pos_count : ndarray of shape (K,), int
        Positives per distinct positive value.
    neg : NegativeCounts
        Normal values counted against the same ``U``.
    """
    p = int(pos_count.sum())
    n = neg.total
    if p == 0:
        return _undefined(name, "no positive samples")
    if n == 0:
        return _undefined(name, "no negative samples")
    lt = neg.strictly_below()
    numerator2 = int(np.dot(pos_count.astype(np.int64), 2 * lt + neg.on))
    return numerator2 / (2.0 * p * n)


def average_precision_from_counts(pos_count: np.ndarray, neg: NegativeCounts, *, name: str = "AP") -> float:
    """Average precision as scikit-learn defines it (step-wise, no interpolation), exact."""
    p = int(pos_count.sum())
    if p == 0:
        return _undefined(name, "no positive samples")
    n = neg.total
    lt = neg.strictly_below()
    tp = p - np.cumsum(pos_count) + pos_count          # positives >= U[i]
    fp = n - lt                                         # negatives >= U[i]
    has = pos_count > 0
    precision = tp[has] / (tp[has] + fp[has])
    # Sum from the highest threshold down, as scikit-learn accumulates it.
    return float(np.sum((pos_count[has] / p * precision)[::-1]))


def _pro_segments(pos_weight: np.ndarray, neg: NegativeCounts):
    """PRO curve as alternating flat and diagonal segments, from high thresholds to low.

    Returns arrays over ``i = K-1 .. 0``: ``flat_before`` (normal pixels strictly above
    ``U[i]`` and below the previous value, at the PRO reached so far), ``diag_dx`` (normal
    pixels equal to ``U[i]``) and ``diag_dy`` (PRO gained at ``U[i]``); then the final flat
    run ``below[0]``.
    """
    flat_before = neg.below[1:][::-1].astype(np.float64)
    diag_dx = neg.on[::-1].astype(np.float64)
    diag_dy = pos_weight[::-1].astype(np.float64)
    return flat_before, diag_dx, diag_dy, float(neg.below[0])


def aupro_from_counts(pos_weight: np.ndarray, n_regions: int, neg: NegativeCounts, *,
                      fpr_limit: float = 0.3, name: str = "AUPRO") -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD definition), exact.

    Parameters
    ----------
    pos_weight : ndarray of shape (K,)
        Sum of ``1 / region area`` over the positive pixels at each distinct value.
    n_regions : int
        Number of regions the weights belong to (PRO = weight sum / ``n_regions``).
    neg : NegativeCounts
        Normal pixels counted against ``U``.
    fpr_limit : float
        Integration limit in (0, 1]; the area is divided by it.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    n = neg.total
    if n_regions == 0:
        return _undefined(name, "no anomalous regions")
    if n == 0:
        return _undefined(name, "no normal pixels")
    flat, dx, dy, tail = _pro_segments(pos_weight, neg)
    # Interleave: flat run, then diagonal (or vertical) step, for each value; then the tail.
    sx = np.concatenate([np.column_stack([flat, dx]).ravel(), [tail]])
    sy = np.concatenate([np.column_stack([np.zeros_like(dy), dy]).ravel(), [0.0]])
    x_end = np.cumsum(sx)
    y_start = np.cumsum(sy) - sy
    limit = fpr_limit * n  # in pixel counts
    j = int(np.searchsorted(x_end, limit, side="left"))
    if j >= sx.size:  # rounding: the curve ends (x = n) just below the limit
        j = sx.size - 1
    area = float(np.dot(sx[:j], y_start[:j] + 0.5 * sy[:j]))
    x0 = x_end[j] - sx[j]
    if sx[j] > 0:
        frac = (limit - x0) / sx[j]
        area += (limit - x0) * (y_start[j] + 0.5 * frac * sy[j])
    return area / n_regions / n / fpr_limit


def roc_curve_from_counts(values: np.ndarray, pos_count: np.ndarray, neg: NegativeCounts) -> RocCurve:
    """ROC vertices at every distinct positive value (plus the flat run before it)."""
    p, n = max(int(pos_count.sum()), 1), max(neg.total, 1)
    lt = neg.strictly_below()
    tp = int(pos_count.sum()) - np.cumsum(pos_count) + pos_count
    fp_at = neg.total - lt
    fp_before = fp_at - neg.on
    order = np.arange(values.size)[::-1]
    fpr = np.concatenate([[0.0], np.column_stack([fp_before[order], fp_at[order]]).ravel() / n, [1.0]])
    tp_prev = np.concatenate([[0], tp[order][:-1]])
    tpr = np.concatenate([[0.0], np.column_stack([tp_prev, tp[order]]).ravel() / p, [1.0]])
    thr = np.concatenate([[np.inf], np.repeat(values[order], 2), [-np.inf]])
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thr)


def pr_curve_from_counts(values: np.ndarray, pos_count: np.ndarray, neg: NegativeCounts) -> PrCurve:
    """Precision and recall at every distinct value that has positives."""
    p = max(int(pos_count.sum()), 1)
    lt = neg.strictly_below()
    tp = int(pos_count.sum()) - np.cumsum(pos_count) + pos_count
    fp = neg.total - lt
    has = (pos_count > 0)[::-1]
    tp_d, fp_d = tp[::-1][has], fp[::-1][has]
    return PrCurve(precision=tp_d / (tp_d + fp_d), recall=tp_d / p, thresholds=values[::-1][has])


def pro_curve_from_counts(values: np.ndarray, pos_weight: np.ndarray, n_regions: int,
                          neg: NegativeCounts) -> ProCurve:
    """PRO curve vertices: for each distinct positive value, the end of the flat run before
    it and the point after its ties; starts at (0, 0), ends at (1, 1)."""
    n = max(neg.total, 1)
    r = max(n_regions, 1)
    flat, dx, dy, tail = _pro_segments(pos_weight, neg)
    x_flat_end = np.cumsum(flat + np.concatenate([[0.0], dx[:-1]]))
    x_after = x_flat_end + dx
    y_after = np.cumsum(dy)
    y_before = y_after - dy
    fpr = np.concatenate([[0.0], np.column_stack([x_flat_end, x_after]).ravel() / n, [1.0]])
    pro = np.concatenate([[0.0], np.column_stack([y_before, y_after]).ravel() / r, [1.0 if n_regions else 0.0]])
    thr = np.concatenate([[np.inf], np.repeat(values[::-1], 2), [-np.inf]])
    _ = tail
    return ProCurve(fpr=fpr, pro=pro, thresholds=thr)
