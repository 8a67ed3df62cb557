"""``validate(root)``: the whole audit of a 3CAD tree in one pass over its files."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Problem, UsageError
from ..labels import LabelMap
from .checks import (count_problems, describe_download_record, image_size_problems, missing_categories,
                     note_ignored_images, published_comparison, read_download_record)
from .duplicates import ImageRef, exact_duplicates, near_duplicates as find_near_duplicates
from .images import HASH_BITS, FileCheck, inspect_files
from .pixels import COPY_MAX_PEAK, COPY_MAX_RESIDUAL, THUMB_SIZE
from .report import ValidationReport, sort_problems

__all__ = ["EXPECT_CHOICES", "CLOSEST_PAIRS", "validate"]

log = logging.getLogger(__name__)

EXPECT_CHOICES = ("auto", "published", "none")
CLOSEST_PAIRS = 10


def _category_dirs(manifest: "object", root: Path) -> dict[str, Path]:
    """Category folder on disk (an alias spelling included) per canonical folder name."""
    dirs: dict[str, Path] = {}
    for cat, path in manifest.groupby("category", sort=False)["image_path"].first().items():
        dirs[cat] = root / Path(path).relative_to(root).parts[0]
    return dirs


def validate(root: str | Path, *, categories: Sequence[str] | None = None, label_map: LabelMap | None = None,
             expect: str = "auto", near_duplicates: bool = True, workers: int | None = None,
             progress: bool = False, closest: int = CLOSEST_PAIRS) -> ValidationReport:
    """Audit a 3CAD tree and report every problem at once.

    Checks: structure and pairing (from :func:`threecad.manifest.scan`), masks (size,
    single channel, values, not empty: :func:`threecad.image_stats.compute_image_stats`
    plus a channel check), images (complete PNG, full decode, published size range),
    counts against the published table, byte-identical duplicates and train/test leakage,
    and near-duplicates by perceptual hash. Each file is read once, in a thread pool.

    Parameters
    ----------
    root : str or Path
        The folder holding the category folders.
    categories : sequence of str, optional
        Only these categories (codes, folder names or aliases).
    label_map : LabelMap, optional
        Defect-name table (default: the built-in one).
    expect : {"auto", "published", "none"}
        Compare counts with the published table: ``published`` always (missing categories
        are errors), ``none`` never, ``auto`` for a tree with all eight categories that is
        not a sample (see :func:`threecad.validate.checks.published_comparison`).
    near_duplicates : bool
        Look for copies that are not byte-identical (perceptual-hash candidates confirmed
        pixel by pixel, :mod:`threecad.validate.duplicates`).
    workers : int, optional
        Threads (default: the number of CPUs).
    progress : bool
        Progress bars on standard error.
    closest : int
        Length of the closest-pairs list.

    Returns
    -------
    ValidationReport

    Raises
    ------
    UsageError
        ``root`` is not a 3CAD tree, a category is unknown, or an option is out of range.
    """
    from ..manifest import scan

    _check_options(expect, workers, closest)
    start = time.perf_counter()
    result = scan(root, categories=categories, label_map=label_map, read_headers=False)
    root = result.root
    manifest = result.manifest.copy()
    problems: list[Problem] = note_ignored_images(result.problems)
    checks = ["structure", "pairing"]

    images, masks = _inspect(manifest, near_duplicates, workers, progress)
    for f in images + masks:
        problems.extend(f.problems)
    manifest["height"] = [f.height for f in images]
    manifest["width"] = [f.width for f in images]
    manifest["channels"] = [f.channels for f in images]
    problems.extend(_mask_pixel_problems(manifest, masks, workers, progress))
    problems.extend(image_size_problems(manifest))
    checks += ["masks", "images"]

    notes: list[str] = []
    compare, why = published_comparison(expect, result.categories, len(manifest), categories)
    notes.append(f"counts: {why}")
    if compare:
        checks.append("counts")
        problems.extend(_count_check(manifest, root, result.categories, expect, categories))

    refs = [ImageRef(rec.image_id, rec.category, rec.split, rec.image_path, f.sha256 or "")
            for rec, f in zip(manifest[["image_id", "category", "split", "image_path"]].itertuples(index=False),
                              images)]
    problems.extend(exact_duplicates(refs, root))
    checks.append("duplicates")

    closest_pairs: list = []
    near_summary = None
    if near_duplicates:
        nd, near_summary, note = _near_duplicate_check(refs, images, closest, workers, root)
        problems.extend(nd.problems)
        closest_pairs = nd.closest
        checks.append("near_duplicates")
        notes.append(note)

    problems = sort_problems(problems)
    elapsed = time.perf_counter() - start
    summary = _summary(problems, manifest, masks, images, result.categories, compare, near_summary, elapsed)
    n_cats = len(result.categories)
    notes.insert(0, f"{len(manifest)} images and {len(masks)} masks in {n_cats} "
                    f"categor{'y' if n_cats == 1 else 'ies'}, checked in {elapsed:.1f} s")
    record = read_download_record(root)
    if record is not None:
        notes.insert(0, describe_download_record(record))
    log.info("validated %s: %d errors, %d warnings in %.1f s", root, summary["errors"], summary["warnings"],
             elapsed)
    return ValidationReport(root=root, problems=problems, summary=summary, closest_pairs=closest_pairs,
                            checks=checks, download_record=record, notes=notes)


def _check_options(expect: str, workers: int | None, closest: int) -> None:
    if expect not in EXPECT_CHOICES:
        raise UsageError(f"expect must be one of {', '.join(EXPECT_CHOICES)}, got {expect!r}")
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if closest < 0:
        raise UsageError(f"closest must be at least 0, got {closest}")


def _inspect(manifest: "object", want_hash: bool, workers: int | None,
             progress: bool) -> tuple[list[FileCheck], list[FileCheck]]:
    """One pass over every file: images (sha256, structure, decode, hash), masks (structure)."""
    image_paths = manifest["image_path"].tolist()
    mask_paths = sorted({p for paths in manifest["mask_paths"] for p in paths})
    jobs = [("image", p) for p in image_paths] + [("mask", p) for p in mask_paths]
    files = inspect_files(jobs, want_hash=want_hash, workers=workers, progress=progress)
    return files[:len(image_paths)], files[len(image_paths):]


def _mask_pixel_problems(manifest: "object", masks: list[FileCheck], workers: int | None,
                         progress: bool) -> list[Problem]:
    """Mask size, value and emptiness problems (the statistics pass owns those checks).

    Masks whose file is already reported broken are left out, so that each problem is
    reported once.
    """
    from ..image_stats import compute_image_stats

    broken = {f.path for f in masks if any(p.is_error and p.kind != "mask_channels" for p in f.problems)}
    stats_input = manifest
    if broken:
        stats_input = manifest.copy()
        keep = [[k for k, p in enumerate(paths) if p not in broken] for paths in manifest["mask_paths"]]
        stats_input["mask_paths"] = [tuple(paths[k] for k in ks) for paths, ks in zip(manifest["mask_paths"], keep)]
        stats_input["mask_types"] = [tuple(types[k] for k in ks) for types, ks in zip(manifest["mask_types"], keep)]
    return compute_image_stats(stats_input, workers=workers, progress=progress).problems


def _count_check(manifest: "object", root: Path, present: Sequence, expect: str,
                 categories: Sequence[str] | None) -> list[Problem]:
    """Count differences from the published table (and missing categories when asked)."""
    problems: list[Problem] = []
    if expect == "published" and not categories:
        problems.extend(missing_categories(root, present))
    cat_dirs = {c.folder: root / c.folder for c in present}
    cat_dirs.update(_category_dirs(manifest, root))
    problems.extend(count_problems(manifest, root, present, cat_dirs))
    return problems


def _near_duplicate_check(refs: list[ImageRef], images: list[FileCheck], closest: int, workers: int | None,
                          root: Path) -> tuple["object", dict[str, object], str]:
    """Copies among the decoded images: the result, its summary entry and its note."""
    hashed = [k for k, f in enumerate(images) if f.phash is not None]
    hashes = (np.stack([images[k].phash for k in hashed]) if hashed
              else np.zeros((0, HASH_BITS // 64), np.uint64))
    thumbs = (np.stack([images[k].thumb for k in hashed]) if hashed
              else np.zeros((0, THUMB_SIZE, THUMB_SIZE), np.uint8))
    nd = find_near_duplicates([refs[k] for k in hashed], hashes, thumbs, closest=closest,
                              workers=workers, root=root)
    summary = {"hash": "DCT pHash, 128x128 grey, 16x16 band", "hash_bits": HASH_BITS,
               "confirmation": f"aligned {THUMB_SIZE}x{THUMB_SIZE} thumbnails",
               "copy_max_residual": COPY_MAX_RESIDUAL, "copy_max_peak": COPY_MAX_PEAK,
               "closest_exact_up_to": nd.radius, "images_hashed": len(hashed),
               "pairs_compared": nd.pairs_compared, "all_pairs": nd.all_pairs,
               "pixel_comparisons": nd.pixel_comparisons, "copies": nd.copies}
    note = (f"near-duplicates: {nd.pixel_comparisons:,} candidate pairs compared pixel by pixel after "
            f"alignment ({nd.copies} copies); closest pairs by {HASH_BITS}-bit perceptual hash, exact up "
            f"to distance {nd.radius}")
    return nd, summary, note


def _summary(problems: list[Problem], manifest: "object", masks: list[FileCheck], images: list[FileCheck],
             present: Sequence, compare: bool, near_summary: dict | None, elapsed: float) -> dict[str, object]:
    by_kind: dict[str, int] = {}
    for p in problems:
        by_kind[p.kind] = by_kind.get(p.kind, 0) + 1
    errors = sum(1 for p in problems if p.is_error)
    return {
        "errors": errors,
        "warnings": len(problems) - errors,
        "images": len(manifest),
        "masks": len(masks),
        "categories": [c.code for c in present],
        "bytes_read": int(sum(max(f.size, 0) for f in images + masks)),
        "by_kind": by_kind,
        "published_comparison": compare,
        "near_duplicates": near_summary,
        "elapsed_s": round(elapsed, 3),
        "images_per_s": round(len(manifest) / elapsed, 1) if elapsed > 0 else None,
    }
