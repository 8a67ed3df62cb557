"""Scanning a 3CAD tree into a manifest: one row per image, masks joined by key.

Layout (MVTec AD style, ``docs/dataset.md``)::

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
from typing import Callable, Iterable, Sequence

from .categories import CATEGORIES, Category, find_category, get_category
from .errors import DataError, Problem, ProblemsView, Severity, UsageError
from .fileio import PNG_HEADER_BYTES, display_name, file_type_problem, is_utf8_name, png_header
from .labels import LabelKind, LabelMap
from .schema import GOOD_FOLDER, GROUND_TRUTH, MANIFEST_COLUMNS, Label, ManifestRow, Split

__all__ = [
    "IMAGE_SUFFIXES",
    "MANIFEST_COLUMNS",
    "SIDE_FILE",
    "ScanResult",
    "ManifestRow",
    "Split",
    "Label",
    "scan",
    "manifest_frame",
    "load_manifest",
    "image_id",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png",)
SIDE_FILE = "defect_types.csv"
SPLITS = tuple(Split)


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
    split: Split
    folder: str
    stem: str
    path: Path
    masks: list[tuple[str, Path]] = field(default_factory=list)  # (folder, path)
    side_types: tuple[str, ...] | None = None


def _entries(folder: Path, problems: list[Problem]) -> list[tuple[os.DirEntry, str]]:
    """The visible entries of a folder with their kind: ``dir``, ``file`` or ``other``.

    Links are followed. An entry that is neither a folder nor a regular file (a FIFO, a
    socket, a device, a symbolic-link loop, a broken link) is reported as
    ``not_regular_file`` and left out; one whose name is not valid UTF-8 as ``bad_name``.
    Both are errors: files of the dataset that no command can use.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        problems.append(Problem("unreadable_folder", folder, f"cannot list folder ({exc.strerror})"))
        return []
    out = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not is_utf8_name(entry.name):
            problems.append(Problem("bad_name", display_name(entry.path),
                                    "name is not valid UTF-8 (undecodable bytes shown as U+FFFD); "
                                    "ignored: rename it"))
            continue
        why = file_type_problem(entry.path)
        if why is None:
            out.append((entry, "file"))
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            out.append((entry, "dir"))
        else:
            problems.append(Problem("not_regular_file", Path(entry.path), f"{why}; ignored"))
    return out


def _list_images(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    """Image files of one folder keyed by stem; other entries become problems."""
    found: dict[str, Path] = {}
    for entry, kind in _entries(folder, problems):
        path = Path(entry.path)
        if kind == "dir":
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
    """Sub-folders of a layout folder; files other than the side file become warnings."""
    out = []
    for entry, kind in _entries(folder, problems):
        if kind == "dir":
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
    """Every image of one category, with its masks joined by key."""
    present = {p.name: p for p in _subfolders(cat_dir, problems)}
    for name, path in present.items():
        if name not in (*SPLITS, GROUND_TRUTH):
            problems.append(Problem("unknown_folder", path,
                                    "not train/, test/ or ground_truth/; ignored", Severity.WARNING))
    if not any(s in present for s in SPLITS):
        problems.append(Problem("empty_category", cat_dir, "has neither train/ nor test/"))

    def note_label(folder: str, where: Path) -> None:
        if labels.resolve(folder).kind is LabelKind.UNKNOWN:
            unknown.setdefault(folder, []).append(str(where))

    images = _scan_images(cat, present, problems, note_label)
    if GROUND_TRUTH in present:
        _join_masks(cat, present[GROUND_TRUTH], [i for i in images if i.split == Split.TEST], problems,
                    note_label)
    return images


def _scan_images(cat: Category, present: dict[str, Path], problems: list[Problem],
                 note_label: Callable[[str, Path], None]) -> list[_Image]:
    """The images under ``train/good``, ``test/good`` and ``test/<defect folder>``."""
    images: list[_Image] = []
    for split in SPLITS:
        split_dir = present.get(split)
        if split_dir is None:
            continue
        for folder_dir in _subfolders(split_dir, problems):
            folder = folder_dir.name
            if split == Split.TRAIN and folder != GOOD_FOLDER:
                problems.append(Problem("unexpected_folder", folder_dir,
                                        "train/ holds only good/ in 3CAD; ignored", Severity.WARNING))
                continue
            if folder != GOOD_FOLDER:
                note_label(folder, folder_dir)
            for stem, path in _list_images(folder_dir, problems).items():
                images.append(_Image(cat, split, folder, stem, path))
    return images


def _mask_owner(cat: Category, folder: str, stem: str, path: Path, by_key: dict[tuple[str, str], _Image],
                by_stem: dict[str, list[_Image]], problems: list[Problem]) -> _Image | None:
    """The test image a mask belongs to (see the module notes), or ``None`` with a problem."""
    owner = by_key.get((folder, stem))
    if owner is None:
        candidates = by_stem.get(stem, [])
        defective = [i for i in candidates if i.folder != GOOD_FOLDER]
        if len(defective) == 1:
            owner = defective[0]
        elif candidates and not defective:
            problems.append(Problem("mask_for_good", path, f"mask for a good image ({candidates[0].path})"))
            return None
        elif not candidates:
            problems.append(Problem("mask_without_image", path,
                                    f"no test image with stem {stem} in {cat.folder}/test/"))
            return None
        else:
            where = ", ".join(str(i.path) for i in defective)
            problems.append(Problem("ambiguous_mask", path,
                                    f"stem {stem} names several test images ({where}); "
                                    f"cannot tell which one this mask belongs to"))
            return None
    if owner.folder == GOOD_FOLDER:
        problems.append(Problem("mask_for_good", path, f"mask for a good image ({owner.path})"))
        return None
    return owner


def _join_masks(cat: Category, gt_dir: Path, test_images: list[_Image], problems: list[Problem],
                note_label: Callable[[str, Path], None]) -> None:
    """Attach every mask under ``ground_truth/`` to its test image, by key."""
    by_key = {(i.folder, i.stem): i for i in test_images}
    by_stem: dict[str, list[_Image]] = {}
    for img in test_images:
        by_stem.setdefault(img.stem, []).append(img)
    for folder_dir in _subfolders(gt_dir, problems):
        folder = folder_dir.name
        if folder == GOOD_FOLDER:
            problems.append(Problem("mask_for_good", folder_dir, "good images have no masks"))
            continue
        note_label(folder, folder_dir)
        for stem, path in _list_images(folder_dir, problems).items():
            owner = _mask_owner(cat, folder, stem, path, by_key, by_stem, problems)
            if owner is not None:
                owner.masks.append((folder, path))


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
        if img.folder == GOOD_FOLDER:
            problems.append(Problem("bad_side_file", where, f"{rel!r} is a good image; it has no types"))
            continue
        for t in types:
            if labels.resolve(t).kind is LabelKind.UNKNOWN:
                unknown.setdefault(t, []).append(str(where))
        img.side_types = tuple(dict.fromkeys(labels.to_english(t) for t in types))


def _image_header(path: Path) -> tuple[int, int, int]:
    """(height, width, channels) from an image header, without decoding pixels: a PNG's
    ``IHDR`` chunk (:func:`threecad.fileio.png_header`), else what Pillow reads (and the
    error it raises)."""
    from PIL import Image

    with open(path, "rb") as fh:
        header = png_header(fh.read(PNG_HEADER_BYTES))
    if header is not None:
        return header
    with Image.open(path) as im:
        width, height = im.size
        channels = len(im.getbands())
    return height, width, channels


def _resolve_root(root: str | Path) -> Path:
    """The absolute tree root; :class:`UsageError` when it is missing or not a folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UsageError(f"{root} does not exist (create a sample with 'threecad sample {root}')")
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    return root.resolve()


def _select_categories(root: Path, categories: Sequence[str] | None,
                       problems: list[Problem]) -> dict[Category, Path]:
    """The category folders to scan, in paper order (missing requested ones are problems)."""
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
        for c in wanted:
            if c not in cat_dirs:
                problems.append(Problem("missing_category", root / c.folder,
                                        f"category {c.code} was asked for but is not in {root}"))
        cat_dirs = {c: cat_dirs[c] for c in wanted if c in cat_dirs}
    return {c: cat_dirs[c] for c in CATEGORIES if c in cat_dirs}


def _apply_side_files(root: Path, cat_dirs: dict[Category, Path], images: list[_Image], labels: LabelMap,
                      problems: list[Problem], unknown: dict[str, list[str]]) -> None:
    """Apply the root's and each category's ``defect_types.csv`` (regular files only)."""
    by_key = {}
    for img in images:
        if img.split == Split.TEST:
            by_key[(root / cat_dirs[img.category].name / Split.TEST / img.folder / img.stem).as_posix()] = img
    side_files = [(root / SIDE_FILE, root)] + [(d / SIDE_FILE, d) for d in cat_dirs.values()]
    for side, base in side_files:
        # A side file that is not a regular file was reported when its folder was listed.
        if not os.path.lexists(side) or file_type_problem(side) is not None:
            continue
        _read_side_file(side, base, by_key, labels, problems, unknown)


def _warn_unknown_labels(unknown: dict[str, list[str]]) -> None:
    for name, wheres in sorted(unknown.items()):
        log.warning("defect folder name %r is neither a known English name nor a known Pinyin "
                    "term; kept unchanged (seen at %s%s). Add it to a label map (--label-map) "
                    "to translate it.", name, wheres[0], f" and {len(wheres) - 1} more" if len(wheres) > 1 else "")


def _manifest_row(img: _Image, labels: LabelMap, problems: list[Problem], read_headers: bool) -> ManifestRow:
    """The manifest row of one image (its missing mask and unreadable header are problems)."""
    cat = img.category
    defect = img.folder != GOOD_FOLDER
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
    return ManifestRow(
        image_id=image_id(cat.folder, img.split, img.folder, img.stem), category=cat.folder, code=cat.code,
        split=img.split, label=Label.DEFECT if defect else Label.GOOD, folder=img.folder,
        defect_type=labels.to_english(img.folder) if defect else GOOD_FOLDER, defect_types=types,
        n_types=len(types), stem=img.stem, image_path=str(img.path),
        mask_paths=tuple(str(p) for _, p in img.masks), mask_types=mask_types,
        height=height, width=width, channels=channels)


def manifest_frame(rows: Iterable[ManifestRow]) -> "object":
    """A manifest DataFrame (:data:`MANIFEST_COLUMNS`, plain strings) from rows, sorted by ``image_id``."""
    import pandas as pd

    frame = pd.DataFrame([r.as_tuple() for r in rows], columns=list(MANIFEST_COLUMNS))
    return frame.sort_values("image_id", kind="stable").reset_index(drop=True)


def scan(root: str | Path, *, categories: Sequence[str] | None = None,
         label_map: LabelMap | None = None, read_headers: bool = True) -> ScanResult:
    """Scan a 3CAD tree into a manifest, collecting every problem instead of stopping.

    Only regular files are read: FIFOs, sockets, devices, symbolic-link loops and broken
    links are ``not_regular_file`` problems, names that are not valid UTF-8 ``bad_name``
    problems; neither stops the scan.

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
        ``manifest`` is a DataFrame with :data:`MANIFEST_COLUMNS` (the fields of
        :class:`threecad.schema.ManifestRow`), sorted by ``image_id``.

    Raises
    ------
    UsageError
        ``root`` is missing or not a 3CAD tree, or a category is unknown.
    """
    root = _resolve_root(root)
    labels = label_map or LabelMap()
    problems: list[Problem] = []
    unknown: dict[str, list[str]] = {}
    cat_dirs = _select_categories(root, categories, problems)
    images: list[_Image] = []
    for cat, cat_dir in cat_dirs.items():
        images.extend(_scan_category(cat, cat_dir, labels, problems, unknown))
    _apply_side_files(root, cat_dirs, images, labels, problems, unknown)
    _warn_unknown_labels(unknown)
    rows = [_manifest_row(img, labels, problems, read_headers) for img in images]
    return ScanResult(root=root, manifest=manifest_frame(rows), problems=problems,
                      categories=tuple(cat_dirs), unknown_labels=unknown)


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
