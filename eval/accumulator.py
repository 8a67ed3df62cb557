"""A streaming accumulator for exact pixel metrics: ``update(mask, map)``, then ``compute()``.

Memory. Anomalous pixels are kept (score key, PRO weight, size class): memory grows with
the anomalous pixels only. Normal pixels are reduced at once to a histogram over their
distinct values:

* maps of 16 bits or fewer (float16, uint8, int8, uint16, int16, bool) use a fixed table of
  65,536 counts per dtype, so memory does not grow with the number of images at all;
* wider maps (float32, float64, 32/64-bit integers) keep one count per distinct normal
  value, which for continuous scores grows with the pixels. Exactness in one pass needs
  that (a later anomalous score may fall between any two normal ones). For bounded memory
  with such maps, store them as float16 (an order-preserving quantisation that changes the
  metric) or evaluate in two passes with :func:`eval.metrics.pixel_metrics` /
  ``threecad eval``, which re-read the maps instead of keeping them.

Accumulators add up with :meth:`PixelAccumulator.merge` (one per thread or process).
:meth:`PixelAccumulator.compute` reduces the state to the one definition of the pixel
statistics, :class:`eval.pixels.PixelCounts`, which computes the metrics.
"""

from __future__ import annotations

import numpy as np

from .engine import NegativeCounts, PositiveIndex, distinct_counts, distinct_positions, order_keys
from .metrics import _check_binary_truth, _check_scores
from .pixels import PixelCounts, PixelResult, extract_positives, positive_counts

__all__ = ["PixelAccumulator"]

_NARROW = {np.dtype(t).str: np.dtype(t) for t in (np.float16, np.uint8, np.int8, np.uint16, np.int16)}


def _narrow_codes(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint16 codes of a narrow dtype (float16 by its bit pattern)."""
    dt = values.dtype
    if dt == np.float16:
        bits = (values.astype(np.float32) + 0.0).astype(np.float16).view(np.uint16)  # -0 -> +0
        return np.where(bits & 0x8000, ~bits, bits | 0x8000).astype(np.uint16)
    if dt in (np.uint8, np.uint16):
        return values.astype(np.uint16)
    return (values.astype(np.int32) + 32768).astype(np.uint16)  # int8 / int16


def _narrow_values(dtype: np.dtype) -> np.ndarray:
    """Value (float64) of every uint16 code of ``dtype``; NaN for codes that are not numbers."""
    codes = np.arange(65536, dtype=np.uint32)
    if dtype == np.float16:
        bits = np.where(codes & 0x8000, codes & 0x7FFF, ~codes & 0xFFFF).astype(np.uint16)
        return bits.view(np.float16).astype(np.float64)
    if dtype in (np.uint8, np.uint16):
        return codes.astype(np.float64)
    return codes.astype(np.float64) - 32768


class PixelAccumulator:
    """Exact P-AUROC, P-AP and AUPRO over images given one at a time.

    Parameters
    ----------
    fpr_limit : float
        AUPRO integration limit (the area is divided by it).

    Examples
    --------
    >>> acc = PixelAccumulator()
    >>> for mask, amap in pairs:          # doctest: +SKIP
    ...     acc.update(mask, amap)
    >>> result = acc.compute()            # doctest: +SKIP
    """

    def __init__(self, *, fpr_limit: float = 0.3) -> None:
        self.fpr_limit = fpr_limit
        self._pos_keys: list[np.ndarray] = []
        self._pos_weights: list[np.ndarray] = []
        self._pos_classes: list[np.ndarray] = []
        self._regions = np.zeros(3, np.int64)
        self._narrow: dict[str, np.ndarray] = {}
        self._wide_keys: list[np.ndarray] = []
        self._wide_counts: list[np.ndarray] = []
        self._wide_pending = 0
        self.n_images = 0

    def update(self, mask: np.ndarray, amap: np.ndarray) -> None:
        """Add one image: ``mask`` (H, W), binary, non-zero = anomalous; ``amap`` (H, W) scores."""
        amap = np.asarray(amap)
        mask = np.asarray(mask)
        if amap.ndim != 2 or amap.shape != mask.shape:
            raise ValueError(f"mask {mask.shape} and map {amap.shape} must be 2-D and of equal shape")
        _check_scores(amap, "the map")
        mask = _check_binary_truth(mask, "the mask")
        if amap.dtype == np.bool_:
            amap = amap.astype(np.uint8)
        pos = extract_positives(amap, mask)
        if pos.flat_index.size:
            self._pos_keys.append(pos.keys)
            self._pos_weights.append(pos.weights)
            self._pos_classes.append(pos.size_class)
        self._regions += np.asarray(pos.regions_per_class, np.int64)
        normal = amap.reshape(-1)
        if pos.flat_index.size:
            keep = np.ones(normal.size, bool)
            keep[pos.flat_index] = False
            normal = normal[keep]
        key = amap.dtype.str
        if key in _NARROW:
            hist = self._narrow.setdefault(key, np.zeros(65536, np.int64))
            hist += np.bincount(_narrow_codes(normal), minlength=65536)
        else:
            u, c = distinct_counts(order_keys(normal))
            self._wide_keys.append(u)
            self._wide_counts.append(c)
            self._wide_pending += u.size
            if len(self._wide_keys) > 16:
                self._compact()
        self.n_images += 1

    def _compact(self) -> None:
        if len(self._wide_keys) <= 1:
            return
        keys = np.concatenate(self._wide_keys)
        counts = np.concatenate(self._wide_counts)
        u, c = distinct_counts(keys, counts)
        self._wide_keys = [u]
        self._wide_counts = [c]

    def merge(self, other: "PixelAccumulator") -> "PixelAccumulator":
        """Add another accumulator's images into this one; returns ``self``."""
        self._pos_keys += other._pos_keys
        self._pos_weights += other._pos_weights
        self._pos_classes += other._pos_classes
        self._regions += other._regions
        for k, h in other._narrow.items():
            self._narrow.setdefault(k, np.zeros(65536, np.int64))
            self._narrow[k] += h
        self._wide_keys += other._wide_keys
        self._wide_counts += other._wide_counts
        self.n_images += other.n_images
        return self

    def _normal_multiset(self) -> tuple[np.ndarray, np.ndarray]:
        keys, counts = [], []
        for k, hist in self._narrow.items():
            used = np.flatnonzero(hist)
            keys.append(order_keys(_narrow_values(_NARROW[k])[used]))
            counts.append(hist[used])
        self._compact()
        keys += self._wide_keys
        counts += self._wide_counts
        if not keys:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        return np.concatenate(keys), np.concatenate(counts)

    def counts(self) -> tuple[PositiveIndex, PixelCounts]:
        """The distinct positive values and the statistics over them (the accumulator stays usable)."""
        pos_keys = np.concatenate(self._pos_keys) if self._pos_keys else np.zeros(0, np.uint64)
        distinct, positions = distinct_positions(pos_keys)
        index = PositiveIndex(distinct, distinct=True)
        k = index.size
        weights = np.concatenate(self._pos_weights) if self._pos_weights else np.zeros(0)
        classes = np.concatenate(self._pos_classes) if self._pos_classes else np.zeros(0, np.int8)
        pos_count, pos_weight = positive_counts(k, positions, weights, classes)
        neg_keys, neg_counts = self._normal_multiset()
        at = np.searchsorted(index.ukeys, neg_keys, side="left")
        equal = at < k
        equal[equal] = index.ukeys[at[equal]] == neg_keys[equal]
        neg = NegativeCounts(
            below=np.bincount(at[~equal], weights=neg_counts[~equal], minlength=k + 1).astype(np.int64),
            on=np.bincount(at[equal], weights=neg_counts[equal], minlength=k).astype(np.int64),
        )
        return index, PixelCounts(pos_count, pos_weight, self._regions.copy(), neg)

    def compute(self) -> PixelResult:
        """The metrics of everything added so far (the accumulator stays usable)."""
        index, counts = self.counts()
        return counts.compute(index.values, fpr_limit=self.fpr_limit)
