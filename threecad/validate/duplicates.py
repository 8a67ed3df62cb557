"""Duplicate images: byte-identical files (sha256) and copies (perceptual hash, then pixels).

Byte-identical files are errors: ``duplicate`` inside one split, ``leakage`` when a test
image of a category is a train image of that category.

Near-duplicates are copies that are not byte-identical (re-encoded, resized, slightly
cropped): warnings, ``near_duplicate`` inside a split and ``near_leakage`` across train and
test. Images of one part in the real release are nearly identical, so a perceptual hash
only proposes candidates; :func:`threecad.validate.pixels.compare_thumbnails` decides, after
aligning the pair. Candidates, inside each category: each image's :data:`NEIGHBOURS`
nearest images by perceptual-hash distance and its nearest by a crop-tolerant thumbnail
descriptor, so the number of pixel comparisons grows linearly with the images.

The closest-pairs list (for a human) is found with a multi-index (Norouzi et al., "Fast
search in Hamming space with multi-index hashing", CVPR 2012), not by comparing all pairs:
the 256 bits are split into ``r + 1`` disjoint chunks; two hashes within distance ``r``
differ in at most ``r`` bits, so by pigeonhole at least one chunk is identical in both.
Bucketing every hash by each chunk's value and comparing only hashes that share a bucket
finds every pair within ``r`` exactly. Chunks take every ``(r + 1)``-th bit (not runs of
neighbouring bits), so each mixes low and high frequencies.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Problem, Severity
from ..schema import Split
from .images import HASH_BITS
from .pixels import COPY_MAX_PEAK, COPY_MAX_RESIDUAL, NEIGHBOURS, PixelMatch, compare_thumbnails, descriptors, nearest_pairs

__all__ = [
    "CLOSEST_RADIUS",
    "CLOSEST_MAX_RADIUS",
    "ImageRef",
    "ClosePair",
    "hamming",
    "hash_neighbours",
    "PAIR_BUDGET",
    "PairSearch",
    "pairs_within",
    "exact_duplicates",
    "candidate_pairs",
    "near_duplicates",
    "NearDuplicateResult",
]

log = logging.getLogger(__name__)

# The closest-pairs list starts from pairs within this many bits (of 256). Distinct shots of
# one part lie as close as 2 bits on the sample (and a 64-bit hash of the real release calls
# some identical), re-saved copies move up to ~14 bits and crops far more: the hash only
# orders candidates, it decides nothing.
CLOSEST_RADIUS = 16
# The closest-pairs list widens the search radius up to this many bits to find enough pairs,
# unless a pass already cost more than PAIR_BUDGET candidate pairs.
CLOSEST_MAX_RADIUS = 32
PAIR_BUDGET = 5_000_000


@dataclass(frozen=True)
class ImageRef:
    """One image as the duplicate checks see it."""

    image_id: str
    category: str
    split: str
    path: str
    sha256: str


@dataclass(frozen=True)
class ClosePair:
    """Two images of one category, their perceptual-hash distance and pixel comparison.

    ``match`` is ``None`` when the pair's pixels were not compared.
    """

    distance: int
    a: ImageRef
    b: ImageRef
    match: PixelMatch | None = None

    @property
    def relation(self) -> str:
        """``"train-test"`` across the splits, else the split both are in."""
        return "train-test" if self.a.split != self.b.split else self.a.split

    @property
    def verdict(self) -> str:
        """``"copy"``, ``"distinct"`` or ``"not compared"``."""
        if self.match is None:
            return "not compared"
        return "copy" if self.match.copy else "distinct"

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        m = self.match
        return {"distance": self.distance, "category": self.a.category, "relation": self.relation,
                "a": str(self.a.path), "b": str(self.b.path), "verdict": self.verdict,
                "pixel_residual": None if m is None or not np.isfinite(m.residual) else round(m.residual, 3),
                "pixel_peak": None if m is None or not np.isfinite(m.peak) else round(m.peak, 3)}


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed hashes (rows of uint64), row by row."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


def hash_neighbours(hashes: np.ndarray, k: int = NEIGHBOURS, *, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each hash's ``k`` nearest other hashes (Hamming), as row pairs ``i < j`` (each once).

    Brute force in blocks of ``block`` rows: ``block * n`` distances in memory at a time.
    """
    n = len(hashes)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    firsts, seconds = [], []
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        d = hamming(hashes[rows, None, :], hashes[None, :, :])
        d[rows - start, rows] = HASH_BITS + 1
        top = np.argpartition(d, k - 1, axis=1)[:, :k]
        firsts.append(np.repeat(rows, k))
        seconds.append(top.ravel())
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    key = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    return key // n, key % n


def _chunk_keys(bits: np.ndarray, n_chunks: int) -> list[np.ndarray]:
    """One uint64 key per hash and chunk; chunk ``j`` holds bits ``j, j + m, j + 2m, ...``.

    Chunks of up to 64 bits are their own key; wider ones (radius below 3) are folded into
    64 bits. Equal chunks always get equal keys, so no pair is lost; a rare fold collision
    only adds a candidate, whose distance is then measured.
    """
    keys = []
    for j in range(n_chunks):
        sub = np.packbits(bits[:, j::n_chunks], axis=1)
        words = -(-sub.shape[1] // 8)
        padded = np.zeros((len(bits), 8 * words), np.uint8)
        padded[:, :sub.shape[1]] = sub
        w = padded.view(np.uint64)
        key = w[:, 0].copy()
        for k in range(1, words):
            key = key * np.uint64(0x9E3779B97F4A7C15) ^ w[:, k]
        keys.append(key)
    return keys


def _bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)``, ``i < j``, of rows with equal keys (vectorised)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    n = len(keys)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new_group = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_id = np.cumsum(new_group) - 1
    group_end = np.r_[np.flatnonzero(new_group)[1:], n][group_id]
    partners = group_end - np.arange(n) - 1  # later members of the same bucket
    total = int(partners.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.repeat(np.arange(n), partners)
    starts = np.cumsum(partners) - partners
    second = first + 1 + (np.arange(total) - np.repeat(starts, partners))
    a, b = order[first], order[second]
    return np.minimum(a, b), np.maximum(a, b)


def pairs_within(hashes: np.ndarray, radius: int, *, nearest: int = 0) -> "PairSearch":
    """Every pair of hashes within ``radius`` bits, found with a multi-index.

    Parameters
    ----------
    hashes : ndarray of shape (n, 4), uint64
        Packed 256-bit hashes.
    radius : int
        Largest Hamming distance to report (0 to 255).
    nearest : int
        Also keep up to this many of the closest candidate pairs *beyond* ``radius`` (pairs
        that shared a chunk by chance): the index measures them anyway, and they fill a
        closest-pairs list when few pairs lie within ``radius``.

    Returns
    -------
    PairSearch
        ``i < j`` row pairs within ``radius`` (each once) with their distances, the kept
        pairs beyond it, and the number of candidate pairs the index produced.
    """
    n = len(hashes)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return PairSearch(empty, empty, empty, empty, empty, empty, 0)
    radius = int(max(0, min(radius, HASH_BITS - 1)))
    bits = np.unpackbits(np.ascontiguousarray(hashes).view(np.uint8), axis=1)
    within: list[tuple[np.ndarray, ...]] = []
    beyond: list[tuple[np.ndarray, ...]] = []
    candidates = 0
    for keys in _chunk_keys(bits, radius + 1):
        i, j = _bucket_pairs(keys)
        candidates += len(i)
        if not len(i):
            continue
        d = hamming(hashes[i], hashes[j])
        keep = d <= radius
        within.append((i[keep], j[keep], d[keep]))
        if nearest:
            far = np.flatnonzero(~keep)
            if len(far) > nearest:
                far = far[np.argpartition(d[far], nearest - 1)[:nearest]]
            beyond.append((i[far], j[far], d[far]))

    def merged(parts: list[tuple[np.ndarray, ...]], limit: int | None) -> tuple[np.ndarray, ...]:
        if not parts:
            return empty, empty, empty
        i, j, d = (np.concatenate([p[k] for p in parts]) for k in range(3))
        _, first = np.unique(i * n + j, return_index=True)
        i, j, d = i[first], j[first], d[first]
        if limit is not None and len(d) > limit:
            top = np.argsort(d, kind="stable")[:limit]
            i, j, d = i[top], j[top], d[top]
        return i, j, d

    return PairSearch(*merged(within, None), *merged(beyond, nearest), candidates)


@dataclass(frozen=True)
class PairSearch:
    """Result of :func:`pairs_within`."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray
    beyond_i: np.ndarray
    beyond_j: np.ndarray
    beyond_distance: np.ndarray
    candidates: int


def _rel(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


_SPLIT_ORDER = {Split.TRAIN: 0, Split.TEST: 1}


def _order(ref: ImageRef) -> tuple[int, str]:
    return _SPLIT_ORDER.get(ref.split, 2), ref.image_id


def exact_duplicates(images: Sequence[ImageRef], root: Path | None = None) -> list[Problem]:
    """Byte-identical images (same sha256), one problem per extra copy.

    A test image identical to a train image of its category is ``leakage``; any other
    copy is a ``duplicate`` of the first file of its group (train before test, then by key).
    Both are errors.
    """
    groups: dict[str, list[ImageRef]] = {}
    for ref in images:
        if ref.sha256:
            groups.setdefault(ref.sha256, []).append(ref)
    problems: list[Problem] = []
    for sha, refs in groups.items():
        if len(refs) < 2:
            continue
        refs = sorted(refs, key=_order)
        first = refs[0]
        for ref in refs[1:]:
            train_twin = next((r for r in refs if r.split == Split.TRAIN and r.category == ref.category), None)
            if ref.split == Split.TEST and train_twin is not None:
                problems.append(Problem(
                    "leakage", Path(ref.path),
                    f"TRAIN/TEST LEAKAGE: test image is byte-identical to train image "
                    f"{_rel(train_twin.path, root)} (sha256 {sha[:12]}...)"))
            else:
                others = len(refs) - 2
                more = f" and {others} other file{'s' if others != 1 else ''}" if others else ""
                problems.append(Problem(
                    "duplicate", Path(ref.path),
                    f"byte-identical to {_rel(first.path, root)}{more} (sha256 {sha[:12]}...)"))
    return problems


@dataclass
class NearDuplicateResult:
    """Near-duplicate problems, the closest pairs seen, and how the search went."""

    problems: list[Problem]
    closest: list[ClosePair]
    radius: int            # every pair up to this hash distance was found (closest list exact up to it)
    pairs_compared: int    # candidate pairs the multi-index produced for the closest list
    all_pairs: int         # what comparing every pair inside each category would have cost
    pixel_comparisons: int  # candidate pairs confirmed or refuted pixel by pixel
    copies: int            # of which copies


def _by_category(images: Sequence[ImageRef]) -> dict[str, np.ndarray]:
    by_cat: dict[str, list[int]] = {}
    for k, ref in enumerate(images):
        by_cat.setdefault(ref.category, []).append(k)
    return {c: np.asarray(v) for c, v in by_cat.items()}


def candidate_pairs(images: Sequence[ImageRef], hashes: np.ndarray, thumbs: np.ndarray, *,
                    neighbours: int = NEIGHBOURS) -> list[tuple[int, int]]:
    """Pairs of images of one category worth comparing pixel by pixel.

    Each image's ``neighbours`` nearest by perceptual hash and by thumbnail descriptor
    (:func:`threecad.validate.pixels.descriptors`); byte-identical pairs left out (they are
    :func:`exact_duplicates`' job). Returns ``(a, b)`` index pairs, ``a < b``, sorted.
    """
    pairs: set[tuple[int, int]] = set()
    for idx in _by_category(images).values():
        if len(idx) < 2:
            continue
        desc = descriptors(thumbs[idx])
        for i, j in (hash_neighbours(hashes[idx], neighbours), nearest_pairs(desc, neighbours)):
            pairs.update(zip(idx[i].tolist(), idx[j].tolist()))
    return sorted((a, b) for a, b in pairs if images[a].sha256 != images[b].sha256)


def _closest_by_hash(images: Sequence[ImageRef], hashes: np.ndarray, *, closest: int, radius: int,
                     max_radius: int, pair_budget: int) -> tuple[list[tuple[int, int, int]], int, int]:
    """The ``closest`` pairs by hash distance, widening the multi-index radius as needed.

    Returns ``(pairs as (distance, a, b), the radius searched exactly, candidates compared)``.
    """
    compared_total = 0
    while True:
        found: list[tuple[int, int, int]] = []   # (distance, image a, image b) within the radius
        nearby: list[tuple[int, int, int]] = []  # closest candidates beyond it
        compared = 0
        for idx_arr in _by_category(images).values():
            res = pairs_within(hashes[idx_arr], radius, nearest=closest)
            compared += res.candidates
            for a, b, dist in zip(idx_arr[res.i].tolist(), idx_arr[res.j].tolist(), res.distance.tolist()):
                if images[a].sha256 != images[b].sha256:
                    found.append((dist, a, b))
            nearby += zip(res.beyond_distance.tolist(), idx_arr[res.beyond_i].tolist(),
                          idx_arr[res.beyond_j].tolist())
        compared_total += compared
        if len(found) >= closest or radius >= max_radius or compared > pair_budget:
            break
        radius = min(radius + 8, max_radius)
    top = heapq.nsmallest(closest, found + nearby,
                          key=lambda t: (t[0], _order(images[t[1]]), _order(images[t[2]])))
    return top, radius, compared_total


def _copy_problem(ref: ImageRef, other: ImageRef, dist: int, match: PixelMatch, more: int,
                  root: Path | None) -> Problem:
    """The warning for ``ref``, a copy of the earlier image ``other``."""
    how = (f"perceptual-hash distance {dist} of {HASH_BITS} bits; after alignment the thumbnails "
           f"differ by {match.residual:.2f} grey levels on average, {match.peak:.1f} at most "
           f"(copy limits {COPY_MAX_RESIDUAL}, {COPY_MAX_PEAK})")
    tail = f"; {more} more cop{'ies' if more > 1 else 'y'} of it" if more else ""
    if ref.split == Split.TEST and other.split == Split.TRAIN:
        return Problem("near_leakage", Path(ref.path),
                       f"test image is a copy of train image {_rel(other.path, root)} ({how}){tail}",
                       Severity.WARNING)
    return Problem("near_duplicate", Path(ref.path), f"copy of {_rel(other.path, root)} ({how}){tail}",
                   Severity.WARNING)


def near_duplicates(images: Sequence[ImageRef], hashes: np.ndarray, thumbs: np.ndarray, *,
                    closest: int = 10, radius: int = CLOSEST_RADIUS, max_radius: int = CLOSEST_MAX_RADIUS,
                    neighbours: int = NEIGHBOURS, pair_budget: int = PAIR_BUDGET, workers: int | None = None,
                    root: Path | None = None) -> NearDuplicateResult:
    """Copies inside each category (not byte-identical), and the closest pairs for a human.

    Candidate pairs (:func:`candidate_pairs`) are compared pixel by pixel
    (:func:`threecad.validate.pixels.compare_thumbnails`); each image that is a copy of an
    earlier one (train before test, then by key) gets one warning naming its closest such
    image: ``near_leakage`` for a test image copied from a train image of its category
    (preferred when there is one), else ``near_duplicate``.

    The closest-pairs list is ordered by hash distance and exact up to the search radius:
    that radius grows from ``radius`` in steps of 8 up to ``max_radius`` until ``closest``
    pairs lie within it (or a pass costs more than ``pair_budget`` candidate pairs); it is
    then filled with the closest pairs beyond the radius that the index measured. Each
    listed pair carries its pixel comparison and verdict.

    Parameters
    ----------
    images : sequence of ImageRef
        The images that could be decoded.
    hashes : ndarray of shape (len(images), 4), uint64
        Their packed perceptual hashes.
    thumbs : ndarray of shape (len(images), THUMB_SIZE, THUMB_SIZE), uint8
        Their grey thumbnails (:func:`threecad.validate.pixels.thumbnail`).
    closest : int
        Length of the closest-pairs list.
    radius, max_radius : int
        First and largest hash radius searched for the closest-pairs list.
    neighbours : int
        Candidates per image from each of the two neighbour searches.
    pair_budget : int
        No wider search after a pass that produced more candidate pairs than this.
    workers : int, optional
        Threads for the pixel comparisons (default: the number of CPUs).
    root : Path, optional
        Paths in messages are relative to it.

    Returns
    -------
    NearDuplicateResult
    """
    from ..parallel import thread_map

    by_cat = _by_category(images)
    all_pairs = sum(len(v) * (len(v) - 1) // 2 for v in by_cat.values())
    top, searched, compared = _closest_by_hash(images, hashes, closest=closest, radius=radius,
                                               max_radius=max(max_radius, radius), pair_budget=pair_budget)
    pairs = candidate_pairs(images, hashes, thumbs, neighbours=neighbours)
    pairs = sorted(set(pairs) | {(min(a, b), max(a, b)) for _, a, b in top})
    matches = dict(zip(pairs, thread_map(lambda ab: compare_thumbnails(thumbs[ab[0]], thumbs[ab[1]]), pairs,
                                         workers=workers, desc="compare", unit="pair")))

    def ordered(a: int, b: int) -> tuple[int, int]:
        return (a, b) if _order(images[a]) <= _order(images[b]) else (b, a)

    copies: dict[int, list[tuple[float, int]]] = {}  # later image -> (residual, earlier image)
    for (a, b), m in matches.items():
        if m.copy:
            early, late = ordered(a, b)
            copies.setdefault(late, []).append((m.residual, early))
    problems = []
    for late in sorted(copies, key=lambda k: _order(images[k])):
        ref = images[late]
        cands = copies[late]
        leaks = [c for c in cands if ref.split == Split.TEST and images[c[1]].split == Split.TRAIN]
        _, early = min(leaks or cands)
        dist = int(hamming(hashes[late], hashes[early]))
        problems.append(_copy_problem(ref, images[early], dist, matches[tuple(sorted((late, early)))],
                                      len(cands) - 1, root))
    listed = []
    for dist, a, b in top:
        early, late = ordered(a, b)
        listed.append(ClosePair(int(dist), images[early], images[late], matches[(min(a, b), max(a, b))]))
    return NearDuplicateResult(problems=problems, closest=listed, radius=searched, pairs_compared=compared,
                               all_pairs=all_pairs, pixel_comparisons=len(pairs),
                               copies=sum(1 for m in matches.values() if m.copy))
