"""Two-pass exact pixel statistics over many images, with groups and region-size classes.

Pass 1 (:meth:`PixelStats.add_positives`) keeps, per anomalous pixel, its score key, its
PRO weight (``1 / area`` of its 8-connected region), the size class of that region and
the image's group. :meth:`PixelStats.finalize_positives` sorts them once into the index
``U``. Pass 2 (:meth:`PixelStats.add_negatives`) streams the normal pixels of every image
through the counting kernel; it may run in several threads, each with its own
:class:`NegativeTally`, merged with :meth:`PixelStats.merge`.

Groups let one pass serve breakdowns: e.g. group 0 = good images, group g = defective
images with type set g. A breakdown is a set of groups; its statistics are sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from threecad.regions import MEDIUM_MAX_AREA, SIZE_CLASSES, SMALL_MAX_AREA, label_regions

from .curves import aupro_from_counts, average_precision_from_counts, roc_auc_from_counts
from .engine import NegativeCounts, PositiveIndex, order_keys

__all__ = ["ImagePositives", "extract_positives", "PixelStats", "NegativeTally", "PixelResult"]


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
    m = np.asarray(mask) > 0
    flat_m = m.reshape(-1)
    flat_index = np.flatnonzero(flat_m)
    if flat_index.size == 0:
        empty = np.zeros(0)
        return ImagePositives(flat_index, empty.astype(np.uint64), empty, empty.astype(np.int8), 0, (0, 0, 0))
    labels, stats = label_regions(m)
    areas = stats[:, 4]
    lab = labels.reshape(-1)[flat_index] - 1
    region_cls = _class_of_areas(areas)
    per_class = tuple(int((region_cls == c).sum()) for c in range(3))
    return ImagePositives(
        flat_index=flat_index,
        keys=order_keys(np.asarray(amap).reshape(-1)[flat_index]),
        weights=1.0 / areas[lab].astype(np.float64),
        size_class=region_cls[lab],
        n_regions=int(areas.size),
        regions_per_class=per_class,  # type: ignore[arg-type]
    )


@dataclass
class NegativeTally:
    """Per-thread normal-pixel counts, one :class:`NegativeCounts` per group."""

    k: int
    counts: dict[int, NegativeCounts] = field(default_factory=dict)

    def for_group(self, group: int) -> NegativeCounts:
        """The counts of ``group`` (created on first use)."""
        c = self.counts.get(group)
        if c is None:
            c = self.counts[group] = NegativeCounts.zeros(self.k)
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


class PixelStats:
    """Exact pixel statistics of a set of images, built in two passes (see module doc)."""

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        self._groups: list[np.ndarray] = []
        self.regions: dict[int, np.ndarray] = {}  # group -> regions per class (3,)
        self.index: PositiveIndex | None = None
        self.negatives: dict[int, NegativeCounts] = {}
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
        acc = self.regions.setdefault(group, np.zeros(3, np.int64))
        acc += np.asarray(pos.regions_per_class, np.int64)

    def finalize_positives(self) -> PositiveIndex:
        """Sort the positives once; per group, count them and sum their PRO weights."""
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        self.index = PositiveIndex(keys)
        k = self.index.size
        self.pos_count: dict[int, np.ndarray] = {}
        self.pos_weight: dict[int, np.ndarray] = {}  # group -> (3, K) weights per size class
        if keys.size:
            pos = self.index.positions(keys)
            weights = np.concatenate(self._weights)
            classes = np.concatenate(self._classes)
            groups = np.concatenate(self._groups)
            for g in np.unique(groups):
                sel = groups == g
                self.pos_count[int(g)] = np.bincount(pos[sel], minlength=k).astype(np.int64)
                w = np.zeros((3, k))
                for c in range(3):
                    sc = sel & (classes == c)
                    w[c] = np.bincount(pos[sc], weights=weights[sc], minlength=k)
                self.pos_weight[int(g)] = w
        self._keys, self._weights, self._classes, self._groups = [], [], [], []
        return self.index

    # pass 2 -----------------------------------------------------------------
    def new_tally(self) -> NegativeTally:
        """A fresh per-thread tally for :meth:`add_negatives`."""
        if self.index is None:
            raise RuntimeError("call finalize_positives before counting normal pixels")
        return NegativeTally(self.index.size)

    def add_negatives(self, tally: NegativeTally, amap: np.ndarray, flat_positive: np.ndarray | None,
                      *, group: int = 0) -> None:
        """Count the normal pixels of one image (all pixels except ``flat_positive``)."""
        assert self.index is not None
        skip = None
        if flat_positive is not None and flat_positive.size:
            skip = np.zeros(amap.size, np.bool_)
            skip[flat_positive] = True
        self.index.count(amap, tally.for_group(group), skip=skip)

    def merge(self, tally: NegativeTally) -> None:
        """Add a thread's tally into the totals."""
        for g, c in tally.counts.items():
            if g in self.negatives:
                self.negatives[g] += c
            else:
                self.negatives[g] = c.copy()
            self.groups.add(g)

    # results -----------------------------------------------------------------
    def compute(self, groups: Iterable[int] | None = None, *, fpr_limit: float = 0.3,
                label: str = "") -> PixelResult:
        """P-AUROC, P-AP, AUPRO (and AUPRO per region-size class) over ``groups``."""
        assert self.index is not None
        k = self.index.size
        chosen = sorted(self.groups if groups is None else set(groups))
        pos_count = np.zeros(k, np.int64)
        pos_weight = np.zeros((3, k))
        neg = NegativeCounts.zeros(k)
        regions = np.zeros(3, np.int64)
        for g in chosen:
            if g in self.pos_count:
                pos_count += self.pos_count[g]
                pos_weight += self.pos_weight[g]
            if g in self.negatives:
                neg += self.negatives[g]
            if g in self.regions:
                regions += self.regions[g]
        tag = f" ({label})" if label else ""
        n_regions = int(regions.sum())
        by_size = {}
        for c, name in enumerate(SIZE_CLASSES):
            if regions[c] == 0:  # no region of this size: NaN, and no warning for an expected gap
                by_size[name] = float("nan")
                continue
            by_size[name] = aupro_from_counts(pos_weight[c], int(regions[c]), neg, fpr_limit=fpr_limit,
                                              name=f"AUPRO of {name} regions{tag}")
        return PixelResult(
            auroc=roc_auc_from_counts(pos_count, neg, name=f"P-AUROC{tag}"),
            ap=average_precision_from_counts(pos_count, neg, name=f"P-AP{tag}"),
            aupro=aupro_from_counts(pos_weight.sum(axis=0), n_regions, neg, fpr_limit=fpr_limit,
                                    name=f"AUPRO{tag}"),
            n_pixels=int(pos_count.sum()) + neg.total,
            n_anomalous=int(pos_count.sum()),
            n_regions=n_regions,
            aupro_by_size=by_size,
            regions_by_size={name: int(regions[c]) for c, name in enumerate(SIZE_CLASSES)},
        )
