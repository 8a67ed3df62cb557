"""Exact ROC, precision-recall and PRO curves and their areas, from one set of threshold counts.

The model is scikit-learn's ``_binary_clf_curve``: one function, :meth:`ThresholdCounts.build`,
turns the engine's per-value counts into cumulative counts at every threshold, and every
curve and area below reads them; nothing else recounts.

Thresholds are the distinct positive values ``U`` (:class:`eval.engine.PositiveIndex`), taken
from high to low; a pixel is flagged when its score is ``>= t``. Normal-only scores add no
threshold: between two positive values the ROC and PRO curves run flat, which the counts
``fps_above`` (normal pixels ``> t``) and ``fps`` (``>= t``) describe exactly. Ties move
both coordinates at once (a diagonal step), as in scikit-learn and the MVTec AD evaluation.

Areas are exact up to the last floating-point rounding and clipped to [0, 1] (only a sum's
rounding can leave that range; scores are never clipped). Undefined metrics (no positives,
no negatives, no regions) are NaN with an :class:`UndefinedMetricWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from numba import njit

from .engine import NegativeCounts

__all__ = [
    "UndefinedMetricWarning",
    "ThresholdCounts",
    "RocCurve",
    "PrCurve",
    "ProCurve",
    "roc_auc_from",
    "average_precision_from",
    "aupro_from",
    "roc_curve_from",
    "pr_curve_from",
    "pro_curve_from",
]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data (e.g. one class absent); its value is NaN."""


def _undefined(name: str, why: str) -> float:
    warnings.warn(f"{name} is undefined ({why}); reported as NaN", UndefinedMetricWarning, stacklevel=3)
    return float("nan")


def _unit(value: float) -> float:
    """``value`` clipped to [0, 1]: an area whose last rounding overshot its range."""
    return min(1.0, max(0.0, float(value)))


@dataclass(frozen=True)
class ThresholdCounts:
    """Cumulative counts at every threshold, thresholds decreasing (shapes ``(K,)``).

    Attributes
    ----------
    thresholds : ndarray of float64
        The distinct positive values, decreasing.
    pos : ndarray of int64
        Positives equal to each threshold.
    tps, fps : ndarray of int64
        Positives and negatives ``>= threshold``.
    fps_above : ndarray of int64
        Negatives ``> threshold`` (the end of the flat run before the threshold).
    n_pos, n_neg : int
        Totals.
    pro_weight : ndarray of float64
        PRO weight (sum of ``1 / region area``) of the positives equal to each threshold.
    n_regions : int
        Regions the PRO weights belong to.
    """

    thresholds: np.ndarray
    pos: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    fps_above: np.ndarray
    n_pos: int
    n_neg: int
    pro_weight: np.ndarray
    n_regions: int = 0

    @classmethod
    def build(cls, values: np.ndarray, pos_count: np.ndarray, neg: NegativeCounts, *,
              pro_weight: np.ndarray | None = None, n_regions: int = 0) -> "ThresholdCounts":
        """The threshold counts of engine counts (all arrays ascending over ``U``).

        Parameters
        ----------
        values : ndarray of shape (K,)
            ``U``, ascending.
        pos_count : ndarray of shape (K,), int
            Positives at each value.
        neg : NegativeCounts
            Normal values counted against ``U``.
        pro_weight : ndarray of shape (K,), optional
            PRO weight of the positives at each value.
        n_regions : int
            Regions the weights belong to.
        """
        pos = np.ascontiguousarray(pos_count, np.int64)
        if pos.shape != neg.on.shape:
            raise ValueError(f"{pos.size} positive counts for {neg.on.size} values")
        tps, fps, fps_above, n_pos, n_neg = _running_counts(pos, neg.below, neg.on)
        weight = np.zeros(pos.size) if pro_weight is None else np.asarray(pro_weight, np.float64)
        return cls(thresholds=np.asarray(values, np.float64)[::-1], pos=pos[::-1], tps=tps[::-1], fps=fps[::-1],
                   fps_above=fps_above[::-1], n_pos=int(n_pos), n_neg=int(n_neg), pro_weight=weight[::-1],
                   n_regions=int(n_regions))

    def with_pro(self, pro_weight: np.ndarray, n_regions: int) -> "ThresholdCounts":
        """The same counts with other PRO weights (ascending over ``U``, e.g. one size class)."""
        return replace(self, pro_weight=np.asarray(pro_weight, np.float64)[::-1], n_regions=int(n_regions))

    @property
    def on(self) -> np.ndarray:
        """Negatives equal to each threshold."""
        return self.fps - self.fps_above


@njit(nogil=True, cache=True)
def _running_counts(pos, below, on):
    """``(tps, fps, fps_above, n_pos, n_neg)`` of :meth:`ThresholdCounts.build`, ascending over
    ``U``, in two passes: positives ``>= U[i]``, negatives ``>= U[i]`` and ``> U[i]``."""
    k = pos.size
    n_pos = np.int64(0)
    n_neg = below[k]
    for i in range(k):
        n_pos += pos[i]
        n_neg += below[i] + on[i]
    tps = np.empty(k, np.int64)
    fps = np.empty(k, np.int64)
    fps_above = np.empty(k, np.int64)
    pos_below = np.int64(0)  # positives strictly below U[i]
    neg_below = np.int64(0)  # negatives strictly below U[i]
    for i in range(k):
        neg_below += below[i]
        tps[i] = n_pos - pos_below
        fps[i] = n_neg - neg_below
        fps_above[i] = fps[i] - on[i]
        pos_below += pos[i]
        neg_below += on[i]
    return tps, fps, fps_above, n_pos, n_neg


@dataclass(frozen=True)
class RocCurve:
    """ROC curve vertices from (0, 0) to (1, 1), thresholds decreasing. Shapes: (n,) each."""

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


def roc_auc_from(tc: ThresholdCounts, *, name: str = "AUROC") -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half), exact."""
    if tc.n_pos == 0:
        return _undefined(name, "no positive samples")
    if tc.n_neg == 0:
        return _undefined(name, "no negative samples")
    numerator2 = int(_mann_whitney2(tc.pos, tc.fps, tc.fps_above, tc.n_neg))
    return _unit(numerator2 / (2.0 * tc.n_pos * tc.n_neg))


@njit(nogil=True, cache=True)
def _mann_whitney2(pos, fps, fps_above, n_neg):
    """Twice the Mann-Whitney count: each positive scores 2 per negative below it and 1 per
    negative tied with it (integers, exact; one pass, no temporaries)."""
    total = np.int64(0)
    for i in range(pos.size):
        below = n_neg - fps[i]
        total += pos[i] * (2 * below + fps[i] - fps_above[i])
    return total


def average_precision_from(tc: ThresholdCounts, *, name: str = "AP") -> float:
    """Average precision as scikit-learn defines it (step-wise, no interpolation), exact."""
    if tc.n_pos == 0:
        return _undefined(name, "no positive samples")
    pos, tps, fps = tc.pos[::-1], tc.tps[::-1], tc.fps[::-1]
    if not pos.all():  # thresholds without positives (the pixel counts have none: no copies then)
        has = pos > 0
        pos, tps, fps = pos[has], tps[has], fps[has]
    precision = tps / (tps + fps)
    # Sum from the highest threshold down, as scikit-learn accumulates it.
    return _unit(np.sum((pos / tc.n_pos * precision)[::-1]))


def aupro_from(tc: ThresholdCounts, *, fpr_limit: float = 0.3, name: str = "AUPRO") -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD definition), exact.

    The curve starts at (0, 0); the last segment is interpolated at the limit; the area is
    divided by ``fpr_limit``. PRO is the weight sum over ``tc.n_regions``.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    n = tc.n_neg
    if tc.n_regions == 0:
        return _undefined(name, "no anomalous regions")
    if n == 0:
        return _undefined(name, "no normal pixels")
    area = _pro_area(tc.fps_above, tc.fps, tc.pro_weight, fpr_limit * n)
    return _unit(area / tc.n_regions / n / fpr_limit)


@njit(nogil=True, cache=True)
def _pro_area(fps_above, fps, dy, limit):
    """Area under the (unnormalised) PRO curve up to ``limit`` normal pixels, walked from high
    thresholds to low and stopped at the limit (no array as long as the curve is made).

    Before threshold ``i`` lies a flat run of ``fps_above[i] - fps[i - 1]`` normal pixels, then
    a diagonal (or vertical) step of ``fps[i] - fps_above[i]`` normal pixels (its ties) and
    ``dy[i]`` PRO weight. The last run is interpolated at the limit; the flat tail below the
    lowest threshold, or a curve that ends short of the limit by rounding, extends flat to it."""
    x = 0.0
    y = 0.0
    area = 0.0
    before = 0
    for i in range(fps.size):
        flat = np.float64(fps_above[i] - before)
        dx = np.float64(fps[i] - fps_above[i])
        before = fps[i]
        if x + flat >= limit:
            return area + (limit - x) * y
        area += flat * y
        x += flat
        if dx > 0 and x + dx >= limit:
            frac = (limit - x) / dx
            return area + (limit - x) * (y + 0.5 * frac * dy[i])
        area += dx * (y + 0.5 * dy[i])
        x += dx
        y += dy[i]
    return area + (limit - x) * y


def roc_curve_from(tc: ThresholdCounts) -> RocCurve:
    """ROC vertices: at each threshold, the end of the flat run before it and the point
    after its ties; from (0, 0) (threshold ``inf``) to (1, 1) (threshold ``-inf``)."""
    p, n = max(tc.n_pos, 1), max(tc.n_neg, 1)
    tp_prev = np.concatenate([[0], tc.tps[:-1]])
    fpr = np.concatenate([[0.0], np.column_stack([tc.fps_above, tc.fps]).ravel() / n, [1.0]])
    tpr = np.concatenate([[0.0], np.column_stack([tp_prev, tc.tps]).ravel() / p, [1.0]])
    thr = np.concatenate([[np.inf], np.repeat(tc.thresholds, 2), [-np.inf]])
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thr)


def pr_curve_from(tc: ThresholdCounts) -> PrCurve:
    """Precision and recall at every distinct value that has positives, thresholds decreasing."""
    has = tc.pos > 0
    tp, fp = tc.tps[has], tc.fps[has]
    return PrCurve(precision=tp / (tp + fp), recall=tp / max(tc.n_pos, 1), thresholds=tc.thresholds[has])


def pro_curve_from(tc: ThresholdCounts) -> ProCurve:
    """PRO curve vertices: at each threshold, the end of the flat run before it and the
    point after its ties; starts at (0, 0), ends at (1, 1)."""
    n = max(tc.n_neg, 1)
    r = max(tc.n_regions, 1)
    y_after = np.cumsum(tc.pro_weight)
    y_before = y_after - tc.pro_weight
    fpr = np.concatenate([[0.0], np.column_stack([tc.fps_above, tc.fps]).ravel() / n, [1.0]])
    pro = np.concatenate([[0.0], np.column_stack([y_before, y_after]).ravel() / r,
                          [1.0 if tc.n_regions else 0.0]])
    thr = np.concatenate([[np.inf], np.repeat(tc.thresholds, 2), [-np.inf]])
    return ProCurve(fpr=fpr, pro=pro, thresholds=thr)
