"""Two-pass exact pixel statistics over many images, with groups and region-size classes.

Pass 1 (:meth:`PixelStats.add_positives`) keeps, per anomalous pixel, its score key, its
PRO weight (``1 / area`` of its 8-connected region), the size class of that region and
the image's group. :meth:`PixelStats.finalize_positives` sorts them once into the index
``U``. Pass 2 (:meth:`PixelStats.add_negatives`) streams the normal pixels of every image
through the counting engine; it may run in several threads, each with its own
:class:`NegativeTally`, merged with :meth:`PixelStats.merge`.

The statistics themselves have one definition, :class:`PixelCounts` (positive counts and
PRO weights per distinct positive value and size class, region counts, normal-pixel
counts): it adds up (:meth:`PixelCounts.merge`) and computes every pixel metric
(:meth:`PixelCounts.compute`), for :class:`PixelStats`, :class:`eval.accumulator.PixelAccumulator`
and the bootstrap alike.

Groups let one pass serve breakdowns: e.g. group 0 = good images, group g = defective
images with type set g. A breakdown is a set of groups; its statistics are sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from numba import njit

from threecad.regions import MEDIUM_MAX_AREA, SIZE_CLASSES, SMALL_MAX_AREA, region_labels

from .curves import ThresholdCounts, aupro_from, average_precision_from, roc_auc_from
from .engine import NegativeCounter, NegativeCounts, PositiveIndex, distinct_positions, order_keys

__all__ = ["ImagePositives", "extract_positives", "PixelCounts", "PixelStats", "NegativeTally", "PixelResult"]


@dataclass(frozen=True)
class ImagePositives:
    """The anomalous pixels of one image: flat indices, keys, PRO weights, size classes."""

    flat_index: np.ndarray   # (p,) int64, into the raveled map
    keys: np.ndarray         # (p,) uint64 order keys of the scores
    weights: np.ndarray      # (p,) float64, 1 / region area
    size_class: np.ndarray   # (p,) int8, index into SIZE_CLASSES
    n_regions: int
    regions_per_class: tuple[int, int, int]


def _class_of_areas(areas: np.ndarray) -> np.ndarray:
    cls = np.full(areas.shape, 2, np.int8)
    cls[areas <= MEDIUM_MAX_AREA] = 1
    cls[areas < SMALL_MAX_AREA] = 0
    return cls


def extract_positives(amap: np.ndarray, mask: np.ndarray) -> ImagePositives:
    """Anomalous pixels of one image (``mask > 0``) with their region weights.

    Parameters
    ----------
    amap : ndarray of shape (H, W)
        Scores (any real or integer dtype, no NaN).
    mask : ndarray of shape (H, W)
        Ground truth; non-zero = anomalous. Regions are its 8-connected components.
    """
    if amap.shape != mask.shape:
        raise ValueError(f"map shape {amap.shape} differs from mask shape {mask.shape}")
    mask = np.asarray(mask)
    m = np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask > 0)
    flat_index = np.flatnonzero(m)
    if flat_index.size == 0:
        empty = np.zeros(0)
        return ImagePositives(flat_index, empty.astype(np.uint64), empty, empty.astype(np.int8), 0, (0, 0, 0))
    n_regions, labels = region_labels(m)
    values = np.asarray(amap).reshape(-1)[flat_index].astype(np.float64)  # the few anomalous scores
    keys, weights, size_class, per_class = _positive_records(values, labels.reshape(-1), flat_index, n_regions,
                                                             SMALL_MAX_AREA, MEDIUM_MAX_AREA)
    return ImagePositives(
        flat_index=flat_index, keys=keys, weights=weights, size_class=size_class, n_regions=n_regions,
        regions_per_class=(int(per_class[0]), int(per_class[1]), int(per_class[2])))


@njit(nogil=True, cache=True)
def _positive_records(values, labels, flat_index, n_regions, small_max, medium_max):
    """Order key (of ``values``, the anomalous scores as float64), PRO weight (``1 / area``)
    and size class of each anomalous pixel, and the regions per size class (the classes as
    :func:`_class_of_areas`); ``labels`` (raveled) number the regions ``1..n_regions``."""
    areas = np.zeros(n_regions, np.int64)
    for j in flat_index:
        areas[labels[j] - 1] += 1
    region_cls = np.empty(n_regions, np.int8)
    per_class = np.zeros(3, np.int64)
    for r in range(n_regions):
        a = areas[r]
        c = 0 if a < small_max else (1 if a <= medium_max else 2)
        region_cls[r] = c
        per_class[c] += 1
    p = flat_index.size
    keys = np.empty(p, np.uint64)
    weights = np.empty(p, np.float64)
    size_class = np.empty(p, np.int8)
    sign = np.uint64(1 << 63)
    for i in range(p):
        j = flat_index[i]
        bits = np.float64(values[i] + 0.0).view(np.uint64)
        keys[i] = ~bits if bits & sign else bits | sign
        r = labels[j] - 1
        weights[i] = 1.0 / areas[r]
        size_class[i] = region_cls[r]
    return keys, weights, size_class, per_class


_TALLY_BUFFER_BYTES = 160 << 20
"""Buffers one tally may hold over all its groups before the idle groups are counted."""


class NegativeTally:
    """One thread's (or task's) normal-pixel counts, per group, against one positive index.

    Counting goes through :class:`eval.engine.NegativeCounter` (buffered when the index is
    large; when the buffers of all groups pass ``_TALLY_BUFFER_BYTES``, the groups other than
    the current one are counted and their buffers freed); :attr:`counts` flushes first, so
    it always holds every pixel added.

    Parameters
    ----------
    k : int
        Size of the index (``K``).
    counts : dict of int to NegativeCounts, optional
        Counts to start from (e.g. unpacked from the network).
    index : PositiveIndex, optional
        The index to count against (needed only by :meth:`add`).
    """

    def __init__(self, k: int, counts: dict[int, NegativeCounts] | None = None, *,
                 index: PositiveIndex | None = None) -> None:
        self.k = k
        self.index = index
        self._counts: dict[int, NegativeCounts] = dict(counts or {})
        self._counters: dict[int, NegativeCounter] = {}

    def add(self, values: np.ndarray, *, skip: np.ndarray | None = None, group: int = 0) -> None:
        """Count ``values`` (except ``skip``) into ``group``."""
        counter = self._counters.get(group)
        if counter is None:
            if self.index is None:
                raise RuntimeError("this tally has no index to count against")
            counter = self._counters[group] = NegativeCounter(self.index, self.for_group(group))
        counter.add(values, skip=skip)
        if len(self._counters) > 1 and sum(c.buffer_bytes for c in self._counters.values()) > _TALLY_BUFFER_BYTES:
            for g in [g for g in self._counters if g != group]:  # bound the memory of many groups
                self._counters.pop(g).flush(release=True)

    def flush(self) -> None:
        """Count every buffered pixel (frees the buffers)."""
        for counter in self._counters.values():
            counter.flush(release=True)
        self._counters.clear()

    @property
    def counts(self) -> dict[int, NegativeCounts]:
        """The counts per group (flushed)."""
        self.flush()
        return self._counts

    def for_group(self, group: int) -> NegativeCounts:
        """The counts of ``group`` (created on first use; buffered pixels not included)."""
        c = self._counts.get(group)
        if c is None:
            c = self._counts[group] = NegativeCounts.zeros(self.k)
        return c


@dataclass(frozen=True)
class PixelResult:
    """Pixel metrics of one breakdown."""

    auroc: float
    ap: float
    aupro: float
    n_pixels: int
    n_anomalous: int
    n_regions: int
    aupro_by_size: dict[str, float]
    regions_by_size: dict[str, int]


@dataclass
class PixelCounts:
    """The sufficient statistics of the pixel metrics over one set of distinct positive values.

    Attributes
    ----------
    pos_count : ndarray of shape (K,), int64
        Anomalous pixels at each distinct positive value ``U[i]``.
    pos_weight : ndarray of shape (3, K), float64
        Their PRO weights (sum of ``1 / region area``) per region-size class.
    regions : ndarray of shape (3,), int64
        Regions per size class.
    neg : NegativeCounts
        Normal pixels counted against ``U``.
    """

    pos_count: np.ndarray
    pos_weight: np.ndarray
    regions: np.ndarray
    neg: NegativeCounts

    @classmethod
    def zeros(cls, k: int) -> "PixelCounts":
        """Empty statistics over ``k`` values."""
        return cls(np.zeros(k, np.int64), np.zeros((3, k)), np.zeros(3, np.int64), NegativeCounts.zeros(k))

    def merge(self, other: "PixelCounts") -> "PixelCounts":
        """Add ``other`` (same values) into this one; returns ``self``."""
        self.pos_count += other.pos_count
        self.pos_weight += other.pos_weight
        self.regions += other.regions
        self.neg += other.neg
        return self

    def threshold_counts(self, values: np.ndarray) -> ThresholdCounts:
        """The counts at every threshold (all size classes' PRO weights)."""
        return ThresholdCounts.build(values, self.pos_count, self.neg, pro_weight=self.pos_weight.sum(axis=0),
                                     n_regions=int(self.regions.sum()))

    def compute(self, values: np.ndarray, *, fpr_limit: float = 0.3, label: str = "") -> PixelResult:
        """P-AUROC, P-AP, AUPRO and AUPRO per region-size class.

        Parameters
        ----------
        values : ndarray of shape (K,)
            ``U``, ascending (only the order matters to the areas).
        fpr_limit : float
            AUPRO integration limit.
        label : str
            Named in the warnings of undefined metrics.
        """
        tag = f" ({label})" if label else ""
        tc = self.threshold_counts(values)
        by_size = {}
        for c, name in enumerate(SIZE_CLASSES):
            if self.regions[c] == 0:  # no region of this size: NaN, and no warning for an expected gap
                by_size[name] = float("nan")
                continue
            by_size[name] = aupro_from(tc.with_pro(self.pos_weight[c], int(self.regions[c])), fpr_limit=fpr_limit,
                                       name=f"AUPRO of {name} regions{tag}")
        return PixelResult(
            auroc=roc_auc_from(tc, name=f"P-AUROC{tag}"),
            ap=average_precision_from(tc, name=f"P-AP{tag}"),
            aupro=aupro_from(tc, fpr_limit=fpr_limit, name=f"AUPRO{tag}"),
            n_pixels=tc.n_pos + tc.n_neg,
            n_anomalous=tc.n_pos,
            n_regions=tc.n_regions,
            aupro_by_size=by_size,
            regions_by_size={name: int(self.regions[c]) for c, name in enumerate(SIZE_CLASSES)},
        )


def positive_counts(k: int, positions: np.ndarray, weights: np.ndarray,
                    classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive counts ``(K,)`` and PRO weights per size class ``(3, K)`` of anomalous pixels.

    Parameters
    ----------
    k : int
        ``K``, the number of distinct positive values.
    positions, weights, classes : ndarray of shape (p,)
        Index in ``U`` (:meth:`eval.engine.PositiveIndex.positions`), ``1 / region area`` and
        size class of each anomalous pixel.
    """
    counts = np.bincount(positions, minlength=k).astype(np.int64)
    w = np.zeros((3, k))
    for c in range(3):
        sel = classes == c
        w[c] = np.bincount(positions[sel], weights=weights[sel], minlength=k)
    return counts, w


class PixelStats:
    """Exact pixel statistics of a set of images, built in two passes (see module doc).

    After :meth:`finalize_positives`, ``counts[g]`` is the :class:`PixelCounts` of group ``g``
    (its normal pixels arrive with :meth:`merge`).
    """

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        self._groups: list[np.ndarray] = []
        self._regions: dict[int, np.ndarray] = {}
        self.index: PositiveIndex | None = None
        self.counts: dict[int, PixelCounts] = {}
        self.groups: set[int] = set()

    # pass 1 -----------------------------------------------------------------
    def add_positives(self, pos: ImagePositives, *, group: int = 0) -> None:
        """Record one image's anomalous pixels under ``group``."""
        if self.index is not None:
            raise RuntimeError("positives are final; add_positives after finalize_positives")
        self.groups.add(group)
        if pos.keys.size:
            self._keys.append(pos.keys)
            self._weights.append(pos.weights)
            self._classes.append(pos.size_class)
            self._groups.append(np.full(pos.keys.size, group, np.int32))
        acc = self._regions.setdefault(group, np.zeros(3, np.int64))
        acc += np.asarray(pos.regions_per_class, np.int64)

    def finalize_positives(self) -> PositiveIndex:
        """Sort the positives once; per group, count them and sum their PRO weights."""
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        distinct, positions = distinct_positions(keys)
        self.index = index = PositiveIndex(distinct, distinct=True)
        self.counts = {g: PixelCounts.zeros(index.size) for g in sorted(self.groups)}
        for g, r in self._regions.items():
            self.counts[g].regions += r
        if keys.size:
            weights = np.concatenate(self._weights)
            classes = np.concatenate(self._classes)
            groups = np.concatenate(self._groups)
            for g in {g for g in self.groups if g in self._regions}:
                sel = groups == g
                if sel.any():
                    self.counts[g].pos_count, self.counts[g].pos_weight = positive_counts(
                        index.size, positions[sel], weights[sel], classes[sel])
        self._keys, self._weights, self._classes, self._groups = [], [], [], []
        return index

    # pass 2 -----------------------------------------------------------------
    def new_tally(self) -> NegativeTally:
        """A fresh per-thread tally for :meth:`add_negatives`."""
        if self.index is None:
            raise RuntimeError("call finalize_positives before counting normal pixels")
        return NegativeTally(self.index.size, index=self.index)

    def add_negatives(self, tally: NegativeTally, amap: np.ndarray, flat_positive: np.ndarray | None,
                      *, group: int = 0) -> None:
        """Count the normal pixels of one image (all pixels except ``flat_positive``)."""
        skip = None
        if flat_positive is not None and flat_positive.size:
            skip = np.zeros(amap.size, np.bool_)
            skip[flat_positive] = True
        tally.add(amap, skip=skip, group=group)

    def merge(self, tally: NegativeTally) -> None:
        """Add a thread's tally into the totals."""
        assert self.index is not None
        for g, c in tally.counts.items():
            if g not in self.counts:
                self.counts[g] = PixelCounts.zeros(self.index.size)
            self.counts[g].neg += c
            self.groups.add(g)

    # results -----------------------------------------------------------------
    @property
    def regions(self) -> dict[int, np.ndarray]:
        """Regions per size class ``(3,)`` of each group."""
        if self.index is None:
            return dict(self._regions)
        return {g: c.regions for g, c in self.counts.items()}

    def total(self, groups: Iterable[int] | None = None) -> PixelCounts:
        """The statistics of a set of groups (default: all), summed."""
        assert self.index is not None
        out = PixelCounts.zeros(self.index.size)
        for g in sorted(self.groups if groups is None else set(groups)):
            if g in self.counts:
                out.merge(self.counts[g])
        return out

    def compute(self, groups: Iterable[int] | None = None, *, fpr_limit: float = 0.3,
                label: str = "") -> PixelResult:
        """P-AUROC, P-AP, AUPRO (and AUPRO per region-size class) over ``groups``."""
        assert self.index is not None
        return self.total(groups).compute(self.index.values, fpr_limit=fpr_limit, label=label)
