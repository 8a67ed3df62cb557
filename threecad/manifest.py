"""Scanning a 3CAD tree into a manifest: one row per image, masks joined by key.

Layout (MVTec AD style, ``shared/3cad_facts.md``)::

    <root>/<Category>/train/good/*.png
    <root>/<Category>/test/good/*.png
    <root>/<Category>/test/<defect folder>/*.png
    <root>/<Category>/ground_truth/<defect folder>/<same stem>.png

Masks are joined to images by key, never by position:

* ``ground_truth/<F>/<stem>`` belongs to ``test/<F>/<stem>`` when that image exists;
* otherwise, when exactly one defective test image of the category has that stem, the
  mask is an additional defect type of that image (an image with several types filed as
  one mask per type under several ``ground_truth/<type>/`` folders);
* otherwise the mask has no image (an error), or it is ambiguous (an error).

A side file ``defect_types.csv`` (columns ``image,types``; types separated by ``;``)
overrides the folder-derived types of the images it lists. It may sit at the root
(``image`` = ``<Category>/test/<folder>/<stem>``) or in a category folder
(``image`` = ``test/<folder>/<stem>``); an extension on ``stem`` is optional.

Defect folder names are mapped to English with :class:`threecad.labels.LabelMap`;
the manifest always carries English names in ``defect_type`` / ``defect_types``
and the name on disk in ``folder``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .categories import CATEGORIES, Category, find_category, get_category
from .errors import DataError, Problem, ProblemsView, Severity, UsageError
from .labels import LabelKind, LabelMap

__all__ = [
    "IMAGE_SUFFIXES",
    "MANIFEST_COLUMNS",
    "SIDE_FILE",
    "ScanResult",
    "scan",
    "load_manifest",
    "image_id",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png",)
SIDE_FILE = "defect_types.csv"
SPLITS = ("train", "test")
GOOD = "good"

MANIFEST_COLUMNS = (
    "image_id",       # "<Category>/<split>/<folder>/<stem>": the key used everywhere
    "category",       # canonical folder name, e.g. "Aluminum_Ipad"
    "code",           # "AI"
    "split",          # "train" | "test"
    "label",          # "good" | "defect"
    "folder",         # defect folder name as on disk ("good" for good images)
    "defect_type",    # English name of ``folder`` ("good" for good images)
    "defect_types",   # tuple of English names (empty for good images)
    "n_types",        # len(defect_types)
    "stem",           # file name without extension
    "image_path",     # absolute path (str)
    "mask_paths",     # tuple of absolute paths (str), one per mask file
    "mask_types",     # tuple of English names, one per mask path
    "height",         # image height in pixels (from the file header)
    "width",          # image width in pixels
    "channels",       # 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)
)


def image_id(category: str, split: str, folder: str, stem: str) -> str:
    """The key of an image: ``<Category>/<split>/<folder>/<stem>``."""
    return f"{category}/{split}/{folder}/{stem}"


@dataclass
class ScanResult(ProblemsView):
    """What :func:`scan` found: the manifest and every problem met on the way."""

    root: Path
    manifest: "object"  # pandas.DataFrame (typed loosely to keep pandas import lazy)
    problems: list[Problem] = field(default_factory=list)
    categories: tuple[Category, ...] = ()
    unknown_labels: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Image:
    category: Category
    split: str
    folder: str
    stem: str
    path: Path
    masks: list[tuple[str, Path]] = field(default_factory=list)  # (folder, path)
    side_types: tuple[str, ...] | None = None


def _list_images(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    """Image files of one folder keyed by stem; other files become warnings."""
    found: dict[str, Path] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        problems.append(Problem("unreadable_folder", folder, f"cannot list folder ({exc.strerror})"))
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            problems.append(Problem("unexpected_folder", path, "folder inside an image folder; ignored",
                                    Severity.WARNING))
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(Problem("unexpected_file", path, "not a .png image; ignored", Severity.WARNING))
            continue
        stem = path.stem
        if stem in found:
            problems.append(Problem("duplicate_stem", path,
                                    f"same stem as {found[stem].name} in this folder; ignored"))
            continue
        found[stem] = path
    return found


def _subfolders(folder: Path, problems: list[Problem]) -> list[Path]:
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            out.append(Path(entry.path))
        elif entry.name != SIDE_FILE:
            problems.append(Problem("unexpected_file", Path(entry.path),
                                    "file outside the 3CAD layout; ignored", Severity.WARNING))
    return out


def _find_category_dirs(root: Path, problems: list[Problem]) -> dict[Category, Path]:
    """Category folders directly under ``root`` (folder names or aliases)."""
    dirs: dict[Category, Path] = {}
    for sub in _subfolders(root, problems):
        cat = find_category(sub.name)
        if cat is None:
            problems.append(Problem("unknown_folder", sub, "not a 3CAD category folder; ignored",
                                    Severity.WARNING))
            continue
        if cat in dirs:
            problems.append(Problem("duplicate_category", sub,
                                    f"names the same category ({cat.code}) as {dirs[cat].name}; ignored"))
            continue
        dirs[cat] = sub
    return dirs


def _explain_not_a_tree(root: Path) -> str:
    """Error text for a root with no category folder, with a hint when one is obvious."""
    if find_category(root.name) is not None and any((root / s).is_dir() for s in SPLITS):
        return (f"{root} is a single category folder; pass the folder that contains it "
                f"({root.parent}) and select the category with --categories {root.name}")
    for sub in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            if any(find_category(s.name) for s in sub.iterdir() if s.is_dir()):
                return f"{root} is not a 3CAD tree, but {sub} looks like one: pass that folder instead"
        except OSError:
            continue
    names = ", ".join(c.folder for c in CATEGORIES[:3])
    return (f"{root} is not a 3CAD tree: expected category folders such as {names}, ... "
            f"directly inside it (create a sample with 'threecad sample DIR')")


def _scan_category(cat: Category, cat_dir: Path, labels: LabelMap, problems: list[Problem],
                   unknown: dict[str, list[str]]) -> list[_Image]:
    images: list[_Image] = []
    test_by_key: dict[tuple[str, str], _Image] = {}
    test_by_stem: dict[str, list[_Image]] = {}

    present = {p.name: p for p in _subfolders(cat_dir, problems)}
    for name, path in present.items():
        if name not in (*SPLITS, "ground_truth"):
            problems.append(Problem("unknown_folder", path,
                                    "not train/, test/ or ground_truth/; ignored", Severity.WARNING))
    if not any(s in present for s in SPLITS):
        problems.append(Problem("empty_category", cat_dir, "has neither train/ nor test/"))

    def note_label(folder: str, where: Path) -> None:
        resolved = labels.resolve(folder)
        if resolved.kind is LabelKind.UNKNOWN:
            unknown.setdefault(folder, []).append(str(where))

    for split in SPLITS:
        split_dir = present.get(split)
        if split_dir is None:
            continue
        for folder_dir in _subfolders(split_dir, problems):
            folder = folder_dir.name
            if split == "train" and folder != GOOD:
                problems.append(Problem("unexpected_folder", folder_dir,
                                        "train/ holds only good/ in 3CAD; ignored", Severity.WARNING))
                continue
            if folder != GOOD:
                note_label(folder, folder_dir)
            for stem, path in _list_images(folder_dir, problems).items():
                img = _Image(cat, split, folder, stem, path)
                images.append(img)
                if split == "test":
                    test_by_key[(folder, stem)] = img
                    test_by_stem.setdefault(stem, []).append(img)

    gt_dir = present.get("ground_truth")
    if gt_dir is not None:
        for folder_dir in _subfolders(gt_dir, problems):
            folder = folder_dir.name
            if folder == GOOD:
                problems.append(Problem("mask_for_good", folder_dir, "good images have no masks"))
                continue
            note_label(folder, folder_dir)
            for stem, path in _list_images(folder_dir, problems).items():
                owner = test_by_key.get((folder, stem))
                if owner is None:
                    candidates = [i for i in test_by_stem.get(stem, [])]
                    defective = [i for i in candidates if i.folder != GOOD]
                    if len(defective) == 1:
                        owner = defective[0]
                    elif candidates and not defective:
                        problems.append(Problem("mask_for_good", path,
                                                f"mask for a good image ({candidates[0].path})"))
                        continue
                    elif not candidates:
                        problems.append(Problem("mask_without_image", path,
                                                f"no test image with stem {stem} in {cat.folder}/test/"))
                        continue
                    else:
                        where = ", ".join(str(i.path) for i in defective)
                        problems.append(Problem("ambiguous_mask", path,
                                                f"stem {stem} names several test images ({where}); "
                                                f"cannot tell which one this mask belongs to"))
                        continue
                if owner.folder == GOOD:
                    problems.append(Problem("mask_for_good", path, f"mask for a good image ({owner.path})"))
                    continue
                owner.masks.append((folder, path))
    return images


def _read_side_file(path: Path, base: Path, images: dict[str, _Image], labels: LabelMap,
                    problems: list[Problem], unknown: dict[str, list[str]]) -> None:
    """Apply one ``defect_types.csv``; keys are relative to ``base`` (root or category)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem("bad_side_file", path, f"cannot read ({exc})"))
        return
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["image", "types"]:
        problems.append(Problem("bad_side_file", path, "expected a CSV header 'image,types'"))
        return
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = Path(f"{path}:{lineno}")
        if len(row) != 2:
            problems.append(Problem("bad_side_file", where, f"expected 2 columns, got {len(row)}"))
            continue
        rel, types_text = row[0].strip(), row[1]
        rel_path = Path(rel)
        if rel_path.suffix.lower() in IMAGE_SUFFIXES:
            rel_path = rel_path.with_suffix("")
        key = (base / rel_path).as_posix()
        img = images.get(key)
        if img is None:
            problems.append(Problem("side_file_unknown_image", where, f"no test image {rel!r}"))
            continue
        if key in seen:
            problems.append(Problem("bad_side_file", where, f"{rel!r} already listed on line {seen[key]}"))
            continue
        seen[key] = lineno
        types = [t.strip() for t in types_text.split(";") if t.strip()]
        if not types:
            problems.append(Problem("bad_side_file", where, f"no types for {rel!r}"))
            continue
        if img.folder == GOOD:
            problems.append(Problem("bad_side_file", where, f"{rel!r} is a good image; it has no types"))
            continue
        for t in types:
            if labels.resolve(t).kind is LabelKind.UNKNOWN:
                unknown.setdefault(t, []).append(str(where))
        img.side_types = tuple(dict.fromkeys(labels.to_english(t) for t in types))


def _image_header(path: Path) -> tuple[int, int, int]:
    """(height, width, channels) from an image header, without decoding pixels."""
    from PIL import Image

    with Image.open(path) as im:
        width, height = im.size
        channels = len(im.getbands())
    return height, width, channels


def scan(root: str | Path, *, categories: Sequence[str] | None = None,
         label_map: LabelMap | None = None, read_headers: bool = True) -> ScanResult:
    """Scan a 3CAD tree into a manifest, collecting every problem instead of stopping.

    Parameters
    ----------
    root : path
        The folder that holds the category folders.
    categories : sequence of str, optional
        Restrict to these categories (codes, folder names or aliases).
    label_map : LabelMap, optional
        Defect-name table (default: the built-in one).
    read_headers : bool
        Read each image's height, width and channels from its header.

    Returns
    -------
    ScanResult
        ``manifest`` is a DataFrame with :data:`MANIFEST_COLUMNS`, sorted by ``image_id``.

    Raises
    ------
    UsageError
        ``root`` is missing or not a 3CAD tree, or a category is unknown.
    """
    import pandas as pd

    root = Path(root).expanduser()
    if not root.exists():
        raise UsageError(f"{root} does not exist (create a sample with 'threecad sample {root}')")
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    root = root.resolve()
    labels = label_map or LabelMap()
    problems: list[Problem] = []
    unknown: dict[str, list[str]] = {}

    wanted: list[Category] | None = None
    if categories:
        try:
            wanted = list(dict.fromkeys(get_category(c) for c in categories))
        except KeyError as exc:
            raise UsageError(str(exc)) from None

    cat_dirs = _find_category_dirs(root, problems)
    if not cat_dirs:
        raise UsageError(_explain_not_a_tree(root))
    if wanted is not None:
        missing = [c for c in wanted if c not in cat_dirs]
        for c in missing:
            problems.append(Problem("missing_category", root / c.folder,
                                    f"category {c.code} was asked for but is not in {root}"))
        cat_dirs = {c: cat_dirs[c] for c in wanted if c in cat_dirs}

    ordered = [c for c in CATEGORIES if c in cat_dirs]
    images: list[_Image] = []
    for cat in ordered:
        images.extend(_scan_category(cat, cat_dirs[cat], labels, problems, unknown))

    by_key = {}
    for img in images:
        if img.split == "test":
            rel_root = (root / cat_dirs[img.category].name / "test" / img.folder / img.stem).as_posix()
            by_key[rel_root] = img
    side_files = [(root / SIDE_FILE, root)] + [(cat_dirs[c] / SIDE_FILE, cat_dirs[c]) for c in ordered]
    for side, base in side_files:
        if side.is_file():
            _read_side_file(side, base, by_key, labels, problems, unknown)

    for name, wheres in sorted(unknown.items()):
        log.warning("defect folder name %r is neither a known English name nor a known Pinyin "
                    "term; kept unchanged (seen at %s%s). Add it to a label map (--label-map) "
                    "to translate it.", name, wheres[0], f" and {len(wheres) - 1} more" if len(wheres) > 1 else "")

    rows = []
    for img in images:
        cat = img.category
        defect = img.folder != GOOD
        img.masks.sort(key=lambda fm: (fm[0] != img.folder, fm[0]))  # own folder's mask first
        mask_types = tuple(labels.to_english(f) for f, _ in img.masks)
        if not defect:
            types: tuple[str, ...] = ()
        elif img.side_types is not None:
            types = img.side_types
        else:
            types = tuple(dict.fromkeys((labels.to_english(img.folder), *mask_types)))
        if defect and not img.masks:
            problems.append(Problem("missing_mask", img.path,
                                    f"defective image has no mask in {cat.folder}/ground_truth/"))
        height = width = channels = -1
        if read_headers:
            try:
                height, width, channels = _image_header(img.path)
            except (OSError, ValueError, SyntaxError) as exc:
                problems.append(Problem("unreadable_image", img.path, f"cannot read image header ({exc})"))
        rows.append({
            "image_id": image_id(cat.folder, img.split, img.folder, img.stem),
            "category": cat.folder,
            "code": cat.code,
            "split": img.split,
            "label": "defect" if defect else "good",
            "folder": img.folder,
            "defect_type": labels.to_english(img.folder) if defect else GOOD,
            "defect_types": types,
            "n_types": len(types),
            "stem": img.stem,
            "image_path": str(img.path),
            "mask_paths": tuple(str(p) for _, p in img.masks),
            "mask_types": mask_types,
            "height": height,
            "width": width,
            "channels": channels,
        })
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest = manifest.sort_values("image_id", kind="stable").reset_index(drop=True)
    return ScanResult(root=root, manifest=manifest, problems=problems, categories=tuple(ordered),
                      unknown_labels=unknown)


def load_manifest(root: str | Path, *, categories: Sequence[str] | None = None,
                  label_map: LabelMap | None = None) -> "object":
    """Scan ``root`` and return the manifest; raise :class:`DataError` listing every error.

    Warnings are logged. See :func:`scan` for the parameters.
    """
    result = scan(root, categories=categories, label_map=label_map)
    raise_on_errors(result.problems, f"{result.root} has problems")
    return result.manifest


def raise_on_errors(problems: Iterable[Problem], message: str) -> None:
    """Log warnings; raise :class:`DataError` with all errors when there are any."""
    problems = list(problems)
    for p in problems:
        if not p.is_error:
            log.warning("%s: %s", p.path, p.message)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise DataError(f"{message} ({len(errors)} error{'s' if len(errors) != 1 else ''}); "
                        f"run 'threecad validate' for a full audit:", errors)
