"""Duplicate images: byte-identical files (sha256) and near-duplicates (perceptual hash).

Byte-identical files are errors: ``duplicate`` inside one split, ``leakage`` when a test
image of a category is a train image of that category.

Near-duplicates are pairs of images of one category whose 256-bit perceptual hashes
(:func:`threecad.validate.images.perceptual_hash`) differ in at most
:data:`NEAR_DUPLICATE_THRESHOLD` bits: warnings, ``near_duplicate`` inside a split and
``near_leakage`` across train and test.

Pairs are found with a multi-index (Norouzi et al., "Fast search in Hamming space with
multi-index hashing", CVPR 2012), not by comparing all pairs: the 256 bits are split into
``r + 1`` disjoint chunks; two hashes within distance ``r`` differ in at most ``r`` bits,
so by pigeonhole at least one chunk is identical in both. Bucketing every hash by each
chunk's value and comparing only hashes that share a bucket finds every pair within ``r``
exactly. Chunks take every ``(r + 1)``-th bit (not runs of neighbouring bits), so each
mixes low and high frequencies and the buckets stay small even for look-alike images.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Problem, Severity
from .images import HASH_BITS

__all__ = [
    "NEAR_DUPLICATE_THRESHOLD",
    "CLOSEST_MAX_RADIUS",
    "ImageRef",
    "ClosePair",
    "hamming",
    "PAIR_BUDGET",
    "PairSearch",
    "pairs_within",
    "exact_duplicates",
    "near_duplicates",
    "NearDuplicateResult",
]

log = logging.getLogger(__name__)

# Hamming distance (of 256 bits) at or below which two images are near-duplicates.
# Measured on the synthetic sample (all pairs of distinct images inside a category): scale
# "small" seed 0: min 30, 0.1th percentile 44, median 126; seed 1: min 24 (p0.1 36); "tiny":
# min 44. The same image re-saved with Gaussian noise (sigma 3-4), a 3x3 or 5x5 blur, JPEG
# quality 70-90 or a 5 % brightness change moves <= 10 bits; heavy noise (sigma 8) or JPEG 50
# <= 14; a 90 % resize <= 6. 16 sits in that gap, nearer the copies than the distinct images,
# since real photos of one part by one camera may well lie closer together than synthetic
# ones. Not caught: crops, and shifts of more than a pixel or two (the hash is
# position-sensitive). A plain 64-bit (8 x 8) pHash cannot separate these: distinct sample
# images came as close as 2 bits while re-saved copies moved up to 4.
NEAR_DUPLICATE_THRESHOLD = 16
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
    """Two images of one category and the Hamming distance of their perceptual hashes."""

    distance: int
    a: ImageRef
    b: ImageRef

    @property
    def relation(self) -> str:
        """``"train-test"`` across the splits, else the split both are in."""
        return "train-test" if self.a.split != self.b.split else self.a.split

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {"distance": self.distance, "category": self.a.category, "relation": self.relation,
                "a": str(self.a.path), "b": str(self.b.path)}


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed hashes (rows of uint64), row by row."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


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


_SPLIT_ORDER = {"train": 0, "test": 1}


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
            train_twin = next((r for r in refs if r.split == "train" and r.category == ref.category), None)
            if ref.split == "test" and train_twin is not None:
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
    threshold: int
    radius: int            # every pair up to this distance was found (closest list exact up to it)
    pairs_compared: int    # candidate pairs the index produced (all passes)
    all_pairs: int         # what comparing every pair inside each category would have cost


def near_duplicates(images: Sequence[ImageRef], hashes: np.ndarray, *,
                    threshold: int = NEAR_DUPLICATE_THRESHOLD, closest: int = 10,
                    max_radius: int = CLOSEST_MAX_RADIUS, pair_budget: int = PAIR_BUDGET,
                    root: Path | None = None) -> NearDuplicateResult:
    """Near-duplicate images inside each category, and the closest pairs for a human.

    Pairs within ``threshold`` bits (byte-identical pairs excepted: they are reported by
    :func:`exact_duplicates`) give one warning per image, naming its closest earlier match:
    ``near_leakage`` for a test image close to a train image of its category, else
    ``near_duplicate``.

    The closest-pairs list is exact up to the search radius: that radius grows from
    ``threshold`` in steps of 8 up to ``max_radius`` until ``closest`` pairs lie within it
    (or a pass costs more than ``pair_budget`` candidate pairs); the list is then filled
    with the closest pairs beyond the radius that the index measured.

    Parameters
    ----------
    images : sequence of ImageRef
        The images that have a hash.
    hashes : ndarray of shape (len(images), 4), uint64
        Their packed perceptual hashes.
    threshold : int
        Largest distance of a near-duplicate.
    closest : int
        Length of the closest-pairs list.
    max_radius : int
        Largest radius searched for the closest-pairs list.
    pair_budget : int
        No wider search after a pass that produced more candidate pairs than this.
    root : Path, optional
        Paths in messages are relative to it.

    Returns
    -------
    NearDuplicateResult
    """
    by_cat: dict[str, list[int]] = {}
    for k, ref in enumerate(images):
        by_cat.setdefault(ref.category, []).append(k)
    all_pairs = sum(len(v) * (len(v) - 1) // 2 for v in by_cat.values())

    radius = threshold
    compared_total = 0
    while True:
        found: list[tuple[int, int, int]] = []   # (distance, image a, image b) within the radius
        nearby: list[tuple[int, int, int]] = []  # closest candidates beyond it
        compared = 0
        for idx in by_cat.values():
            idx_arr = np.asarray(idx)
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
    log.debug("near-duplicates: radius %d, %d candidate pairs (all pairs: %d), %d pairs found",
              radius, compared, all_pairs, len(found))

    def ordered(a: int, b: int) -> tuple[int, int]:
        return (a, b) if _order(images[a]) <= _order(images[b]) else (b, a)

    # One warning per image: its closest earlier match within the threshold.
    matches: dict[int, list[tuple[int, tuple[int, str], int]]] = {}
    for dist, a, b in found:
        if dist <= threshold:
            early, late = ordered(a, b)
            matches.setdefault(late, []).append((dist, _order(images[early]), early))
    problems = []
    for late in sorted(matches, key=lambda k: _order(images[k])):
        ref = images[late]
        # Leakage first: a test image is matched to the closest train image when there is one.
        train = [m for m in matches[late] if images[m[2]].split == "train" and ref.split == "test"]
        dist, _, early = min(train or matches[late])
        count = len(matches[late])
        other = images[early]
        more = f"; {count - 1} more image{'s' if count > 2 else ''} within the threshold" if count > 1 else ""
        if ref.split == "test" and other.split == "train":
            kind = "near_leakage"
            text = (f"test image looks like train image {_rel(other.path, root)} "
                    f"(perceptual-hash distance {dist} of {HASH_BITS} bits, threshold {threshold}){more}")
        else:
            kind = "near_duplicate"
            text = (f"looks like {_rel(other.path, root)} (perceptual-hash distance {dist} of "
                    f"{HASH_BITS} bits, threshold {threshold}){more}")
        problems.append(Problem(kind, Path(ref.path), text, Severity.WARNING))

    top = heapq.nsmallest(closest, found + nearby, key=lambda t: (t[0], _order(images[t[1]]), _order(images[t[2]])))
    pairs = []
    for dist, a, b in top:
        early, late = ordered(a, b)
        pairs.append(ClosePair(int(dist), images[early], images[late]))
    return NearDuplicateResult(problems=problems, closest=pairs, threshold=threshold, radius=radius,
                               pairs_compared=compared_total, all_pairs=all_pairs)
