"""Checks on the manifest as a whole: structure notes, categories, sizes, published counts.

The per-file checks live in :mod:`threecad.validate.images`, the duplicate checks in
:mod:`threecad.validate.duplicates`; structure and pairing problems come from
:func:`threecad.manifest.scan` and mask problems from
:func:`threecad.image_stats.compute_image_stats`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from ..categories import CATEGORIES, Category
from ..errors import Problem, Severity

__all__ = [
    "DOWNLOAD_RECORD",
    "AUTO_MIN_FRACTION",
    "published_comparison",
    "note_ignored_images",
    "missing_categories",
    "image_size_problems",
    "count_problems",
    "read_download_record",
    "describe_download_record",
]

log = logging.getLogger(__name__)

DOWNLOAD_RECORD = ".threecad-download.json"
# With --expect auto the counts are compared only for a tree that has all eight categories
# and at least this share of the published number of images: fewer means a sample or a
# deliberate subset, not a broken download (a download cut short loses whole folders).
AUTO_MIN_FRACTION = 0.10

_IGNORED_KINDS = ("unknown_folder", "unexpected_folder")


def published_comparison(expect: str, present: Sequence[Category], n_images: int,
                         asked: Sequence[str] | None) -> tuple[bool, str]:
    """Whether to compare with the published table, and why (a sentence for the report).

    Parameters
    ----------
    expect : {"auto", "published", "none"}
        The user's choice.
    present : sequence of Category
        Categories found (and selected).
    n_images : int
        Images in the manifest.
    asked : sequence of str, optional
        The ``--categories`` selection, if any.
    """
    if expect == "none":
        return False, "not compared with the published table (--expect none)"
    if expect == "published":
        scope = "the selected categories" if asked else "all eight categories"
        return True, f"compared with the published table ({scope}; --expect published)"
    if len(present) < len(CATEGORIES):
        return False, (f"not compared with the published table: {len(present)} of {len(CATEGORIES)} "
                       f"categories present (a subset); --expect published compares them")
    published = sum(c.train + c.test for c in CATEGORIES)
    if n_images < AUTO_MIN_FRACTION * published:
        return False, (f"not compared with the published table: the tree holds {n_images} images, "
                       f"under {AUTO_MIN_FRACTION:.0%} of the published {published:,} (a sample or a "
                       f"subset); --expect published compares them")
    return True, "compared with the published table (all eight categories present)"


def _count_pngs(folder: Path) -> int:
    n = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        n += sum(1 for f in filenames if not f.startswith(".") and f.lower().endswith(".png"))
    return n


def note_ignored_images(problems: Iterable[Problem]) -> list[Problem]:
    """Add to each ignored-folder problem how many images lie unseen in that folder."""
    out = []
    for p in problems:
        if p.kind in _IGNORED_KINDS and Path(p.path).is_dir():
            n = _count_pngs(Path(p.path))
            if n:
                p = Problem(p.kind, p.path, f"{p.message} ({n} .png file{'s' if n != 1 else ''} in it "
                                            f"that no command reads)", p.severity)
        out.append(p)
    return out


def missing_categories(root: Path, present: Sequence[Category]) -> list[Problem]:
    """One error per published category that the tree lacks (for ``--expect published``)."""
    have = set(present)
    return [Problem("missing_category", root / c.folder,
                    f"category {c.code} ({c.folder}) is missing; the published release has "
                    f"{c.train + c.test} images in it")
            for c in CATEGORIES if c not in have]


def image_size_problems(manifest: "object") -> list[Problem]:
    """A warning per image whose height or width lies outside its category's published range."""
    by_folder = {c.folder: c for c in CATEGORIES}
    problems = []
    sized = manifest[(manifest["height"] > 0) & (manifest["width"] > 0)]
    for folder, rows in sized.groupby("category", sort=False):
        cat = by_folder[folder]
        (h0, h1), (w0, w1) = cat.height, cat.width
        bad = rows[(rows["height"] < h0) | (rows["height"] > h1) | (rows["width"] < w0) | (rows["width"] > w1)]
        for rec in bad[["image_path", "height", "width"]].itertuples(index=False):
            problems.append(Problem(
                "image_size", Path(rec.image_path),
                f"{rec.height}x{rec.width} (HxW) is outside the published range of {cat.code}: "
                f"height {h0}-{h1}, width {w0}-{w1}", Severity.WARNING))
    return problems


def count_problems(manifest: "object", root: Path, present: Sequence[Category] = (),
                   cat_dirs: dict[str, Path] | None = None) -> list[Problem]:
    """Errors where the tree's counts differ from the published table.

    Compares, per category present, train / test / test good / test defect images and the
    number of defect types (and the total row when all eight are present), with
    :func:`threecad.stats.compare_published`. One error per category lists every field.
    A category folder of ``present`` without any image counts as zero everywhere.
    """
    from ..stats import COUNT_FIELDS, Difference, compare_published, summarise

    cat_dirs = cat_dirs or {}
    summary = summarise(manifest)
    diffs = [d for d in compare_published(summary, only_present=True) if d.field in COUNT_FIELDS]
    for cat in present:
        if cat.folder not in summary["categories"]:
            published = cat.published_row()
            diffs += [Difference(cat.code, k, 0, published[k]) for k in COUNT_FIELDS]
    by_cat: dict[str, list] = {}
    for d in diffs:
        by_cat.setdefault(d.category, []).append(d)
    folders = {c.code: c.folder for c in CATEGORIES}
    problems = []
    for code, ds in by_cat.items():
        fields = ", ".join(f"{d.field} {d.tree} (published {d.published})" for d in ds)
        if code == "all":
            problems.append(Problem("count_mismatch", root, f"all categories: {fields}"))
        else:
            path = cat_dirs.get(folders[code], root / folders[code])
            problems.append(Problem("count_mismatch", path, f"{code} differs from the published table: {fields}"))
    return problems


def read_download_record(root: Path) -> dict[str, object] | None:
    """The download record ``threecad download`` left in ``root``, or ``None``.

    The record is information, not a check: an unreadable record is logged and returned
    as ``{"error": ...}``.
    """
    path = root / DOWNLOAD_RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("cannot read the download record %s (%s)", path, exc)
        return {"path": str(path), "error": f"cannot read ({exc})"}
    if not isinstance(data, dict):
        return {"path": str(path), "error": "not a JSON object"}
    return {"path": str(path), **data}


def describe_download_record(record: dict[str, object]) -> str:
    """One line saying which archive the tree came from."""
    if "error" in record and len(record) <= 2:
        return f"download record {record.get('path')}: {record['error']}"

    def first(*keys: str) -> object | None:
        for k in keys:
            v = record.get(k)
            if v not in (None, ""):
                return v
        return None

    name = first("resource", "name", "release", "dataset")
    archive = first("archive", "filename", "file", "archive_name")
    sha = first("sha256", "archive_sha256")
    source = first("url", "source", "drive_id", "file_id")
    when = first("downloaded_at", "completed_at", "date", "time", "timestamp")
    parts = [f"resource {name}" if name else "unnamed resource"]
    if archive:
        parts.append(f"archive {archive}")
    if sha:
        parts.append(f"sha256 {str(sha)[:16]}...")
    if source:
        parts.append(f"from {source}")
    if when:
        parts.append(f"on {when}")
    return "downloaded by 'threecad download': " + ", ".join(parts)
