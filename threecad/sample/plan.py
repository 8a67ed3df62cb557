"""What a category's sample holds: which images, their sizes, stems, types and region counts.

Planning is separate from drawing so that every image's content comes from its own random
stream (keyed by seed, category and position), independent of the other images and of which
categories are written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..categories import CATEGORIES, Category
from ..schema import Split
from .catalog import SAMPLE_TYPES, ScalePlan

__all__ = ["PlannedImage", "plan_category", "image_rng", "part_rng"]

_PLAN_STREAM = 1
_IMAGE_STREAM = 2
_PART_STREAM = 3
_SPLIT_IDS = {Split.TRAIN: 0, Split.TEST: 1}


@dataclass(frozen=True)
class PlannedImage:
    """One image to draw.

    Attributes
    ----------
    split : str
        ``train`` or ``test``.
    index : int
        Position within the split before stems are shuffled; keys the image's random stream.
    stem : str
        Six-digit file name without extension.
    height, width : int
        Image size in pixels.
    types : tuple of str
        English defect types, the folder's type first; empty for a good image.
    counts : tuple of int
        Planned regions per type (at least one each).
    part : tuple of (str, int) or None
        ``(split, index)`` of the image whose part this image shows again (a distinct shot of
        the same part, with its own lighting, noise and defects); ``None`` for a part of its own.
    """

    split: Split
    index: int
    stem: str
    height: int
    width: int
    types: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    part: tuple[Split, int] | None = None

    @property
    def part_key(self) -> tuple[Split, int]:
        """``(split, index)`` of the image that first showed this image's part."""
        return self.part or (self.split, self.index)


def _cat_index(cat: Category) -> int:
    return [c.code for c in CATEGORIES].index(cat.code)


def image_rng(seed: int, cat: Category, item: PlannedImage) -> np.random.Generator:
    """The random stream of ``item``'s shot: shift, lighting, noise and defects."""
    return np.random.default_rng([seed, _cat_index(cat), _IMAGE_STREAM,
                                  _SPLIT_IDS[item.split], item.index])


def part_rng(seed: int, cat: Category, item: PlannedImage) -> np.random.Generator:
    """The random stream that draws the part ``item`` shows (shared by every shot of it)."""
    split, index = item.part_key
    return np.random.default_rng([seed, _cat_index(cat), _PART_STREAM, _SPLIT_IDS[split], index])


def _size(rng: np.random.Generator, span: tuple[int, int], fraction: float) -> int:
    lo, hi = span
    return lo + int(rng.integers(0, int((hi - lo) * fraction) + 1))


def _region_counts(rng: np.random.Generator, cat: Category, n_types: int,
                   cap: int) -> tuple[int, ...]:
    """Regions per type: total drawn within the published range (capped), at least one each."""
    lo = max(cat.regions_per_defect_image[0], n_types)
    hi = max(lo, min(cat.regions_per_defect_image[1], cap))
    counts = [1] * n_types
    for _ in range(int(rng.integers(lo, hi + 1)) - n_types):
        counts[int(rng.integers(n_types))] += 1
    return tuple(counts)


def plan_category(cat: Category, plan: ScalePlan, seed: int) -> list[PlannedImage]:
    """Every image of one category at one scale: train images first, then test by position."""
    rng = np.random.default_rng([seed, _cat_index(cat), _PLAN_STREAM])
    types = SAMPLE_TYPES[cat.code]
    n_def = max(plan.per_type * len(types), plan.min_defect)
    order = rng.permutation(len(types))
    primaries = list(types) * plan.per_type
    primaries += [types[order[i % len(types)]] for i in range(n_def - len(primaries))]
    multi: set[int] = set()
    if cat.types_per_defect_image[1] > 1 and len(types) > 1:
        m = max(1, round(n_def / plan.multi_every))
        multi = {int(i) for i in rng.choice(n_def, size=m, replace=False)}

    def size() -> tuple[int, int]:
        return _size(rng, cat.height, plan.size_fraction), _size(rng, cat.width, plan.size_fraction)

    items = [PlannedImage(Split.TRAIN, i, f"{i:06d}", *size()) for i in range(plan.train)]
    test: list[tuple[tuple[int, int], tuple[str, ...], tuple[int, ...]]] = []
    for _ in range(plan.test_good):
        test.append((size(), (), ()))
    for i, first in enumerate(primaries):
        chosen: tuple[str, ...] = (first,)
        if i in multi:
            others = [t for t in types if t != first]
            chosen = (first, others[int(rng.integers(len(others)))])
        test.append((size(), chosen, _region_counts(rng, cat, len(chosen), plan.max_regions)))
    stems = rng.permutation(len(test))
    reshot = _reshoots(rng, plan, len(test), plan.test_good)
    for i, ((h, w), chosen, counts) in enumerate(test):
        part = None
        if i in reshot:
            source = items[reshot[i]]
            part, (h, w) = (Split.TRAIN, source.index), (source.height, source.width)
        items.append(PlannedImage(Split.TEST, i, f"{int(stems[i]):06d}", h, w, chosen, counts, part))
    return items


def _reshoots(rng: np.random.Generator, plan: ScalePlan, n_test: int, n_good: int) -> dict[int, int]:
    """Test positions that show a train image's part again: {test index: train index}.

    Alternately a good and a defective test image, each paired with a different train image
    (as in the real release, where a test image can be a near-identical shot of a train part).
    """
    n = min(plan.reshoots, plan.train, n_test)
    good = list(rng.permutation(n_good)) if n_good else []
    defect = list(n_good + rng.permutation(n_test - n_good)) if n_test > n_good else []
    chosen: list[int] = []
    while len(chosen) < n and (good or defect):
        pool = good if (len(chosen) % 2 == 0 and good) or not defect else defect
        chosen.append(int(pool.pop(0)))
    trains = rng.choice(plan.train, size=len(chosen), replace=False) if chosen else []
    return {t: int(s) for t, s in zip(chosen, trains)}
