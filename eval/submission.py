"""Loading and validating a submission (``threecad eval PREDS_DIR``).

Layout (``docs/submission-format.md``, the contract; names from :mod:`threecad.eval.format`)::

    PREDS_DIR/
      <Category>/test/<folder>/<stem>.<ext>   one anomaly map per test image
      scores.csv                              optional: image-level scores, ``image,score``
      submission.json                         optional: {"format_version": 1, "method": ...}
      results/                                allowed (the default output folder)

``<Category>`` is the dataset's category folder name or any alias
(:func:`threecad.categories.find_category`); ``<folder>`` the defect folder name as in the
dataset (the manifest's ``folder``; its English name is accepted too), ``good`` for good
images; ``<ext>`` one of :data:`eval.mapio.MAP_SUFFIXES`. Maps are joined to the manifest by
key (``image_id``), never by position. Only categories with a folder in ``PREDS_DIR`` are
scored; within them every test image needs exactly one map.

The names, extensions and limits of the format come from :mod:`threecad.eval.format`.

Validation is structural (directory listings and ``stat`` only, no map is opened) unless
``check_contents=True``. Every problem is collected; then one :class:`SubmissionError`
lists them all. Nothing is written. Files are untrusted: only regular files are opened
(a FIFO, device or symbolic-link loop is a ``not_regular_file`` problem, found without
blocking); a symbolic link leading outside the submission is a ``link_outside`` problem and
is never opened or listed; ``scores.csv`` and ``submission.json`` are read with size and
nesting limits.

Problem kinds: ``missing_map``, ``duplicate_map``, ``extra_map``, ``unknown_file``,
``not_regular_file``, ``link_outside``, ``unreadable_map``, ``bad_map``, ``bad_scores``,
``bad_metadata``, and for whole categories
``missing_category`` (asked for with ``categories=`` but not in the submission),
``unknown_category`` (in the submission but without test images in the manifest) and
``duplicate_category`` (two folders naming one category).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from threecad.categories import CATEGORIES, Category, find_category, get_category
from threecad.errors import BadFileError, DataError, Problem, UsageError
from threecad.parallel import thread_map

from .format import (FORMAT_VERSION, MAP_SUFFIXES, MAX_META_BYTES, MAX_META_DEPTH, MAX_SCORES_BYTES, META_FILE,
                     META_KEYS, NOT_REGULAR_FILE, RESULTS_DIR, SCORES_FILE, SCORES_HEADER, TEST_DIR,
                     file_type_problem, json_depth_exceeds, read_limited)
from .mapio import MapReadError, read_map

__all__ = [
    "validate_submission",
    "FORMAT_VERSION",
    "SCORES_FILE",
    "META_FILE",
    "RESULTS_DIR",
    "SubmissionMeta",
    "Submission",
    "SubmissionError",
    "load_submission",
]

log = logging.getLogger(__name__)

TEST = TEST_DIR
_SUFFIX_TEXT = ", ".join(MAP_SUFFIXES)
_STRIPPABLE = (*MAP_SUFFIXES, ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class SubmissionMeta:
    """What ``submission.json`` says (defaults when it is absent).

    Attributes
    ----------
    format_version : int
        Always 1 (the only version this code reads).
    method : str
        Method name; defaults to the submission folder's name.
    team : str or None
        Team name, if given.
    extra : dict
        Every other key of ``submission.json``, unchanged.
    """

    format_version: int
    method: str
    team: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Submission:
    """A validated submission: maps (and scores) keyed by the manifest's ``image_id``.

    Attributes
    ----------
    root : Path
        The submission folder (resolved).
    meta : SubmissionMeta
        From ``submission.json``.
    maps : dict of str to Path
        ``"<Category>/test/<folder>/<stem>"`` -> map file, for every test image of the
        covered categories, in manifest order.
    scores : dict of str to float or None
        Image scores from ``scores.csv`` keyed like ``maps``; ``None`` without that file.
    categories : tuple of str
        Canonical folder names of the covered categories, in the paper's order.
    """

    root: Path
    meta: SubmissionMeta
    maps: dict[str, Path]
    scores: dict[str, float] | None
    categories: tuple[str, ...]

    def files(self) -> list[Path]:
        """Every file the submission consists of (maps, then scores/metadata when present), sorted."""
        out = sorted(self.maps.values())
        for name in (SCORES_FILE, META_FILE):
            if (self.root / name).is_file():
                out.append(self.root / name)
        return out


class SubmissionError(DataError):
    """The submission has problems; ``problems`` lists every one of them."""


@dataclass
class _CategoryIndex:
    """Test images of one category in the manifest."""

    ids: dict[tuple[str, str], str] = field(default_factory=dict)   # (folder, stem) -> image_id
    names: dict[str, str] = field(default_factory=dict)             # folder name or English -> folder


def _index_manifest(manifest: Any) -> dict[Category, _CategoryIndex]:
    """Index the manifest's test images by category, then (folder, stem)."""
    if hasattr(manifest, "manifest") and not hasattr(manifest, "columns"):  # a ScanResult
        manifest = manifest.manifest
    required = ("image_id", "category", "split", "folder", "stem")
    columns = set(getattr(manifest, "columns", ()))
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {', '.join(missing)}; build it with threecad.manifest.scan")
    test = manifest[manifest["split"] == TEST]
    english = test["defect_type"].tolist() if "defect_type" in columns else test["folder"].tolist()
    index: dict[Category, _CategoryIndex] = {}
    by_name: dict[str, Category | None] = {}
    aliases: dict[Category, dict[str, set[str]]] = {}
    for iid, cat_name, folder, stem, eng in zip(test["image_id"].tolist(), test["category"].tolist(),
                                                test["folder"].tolist(), test["stem"].tolist(), english):
        cat = by_name.get(cat_name)
        if cat is None:
            cat = by_name[cat_name] = get_category(cat_name)
        ci = index.get(cat)
        if ci is None:
            ci = index[cat] = _CategoryIndex()
        ci.ids[(folder, stem)] = iid
        ci.names[folder] = folder
        aliases.setdefault(cat, {}).setdefault(eng, set()).add(folder)
    for cat, by_english in aliases.items():
        names = index[cat].names
        for eng, folders in by_english.items():
            if len(folders) == 1 and eng not in names:
                names[eng] = next(iter(folders))
    return index


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``entry.is_dir()``, False for a symbolic-link loop or an entry that vanished (no OSError)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    """``entry.is_file()`` (a regular file, links followed), False instead of an OSError."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _sorted_entries(folder: str | Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not _hidden(e.name)), key=lambda e: e.name)


class _Collector:
    """Problems of one load, appended in the order found; ``refused`` paths are never opened or listed."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.refused: set[str] = set()

    def add(self, kind: str, path: str | Path, message: str) -> None:
        self.problems.append(Problem(kind, Path(path), message))

    def add_error(self, exc: BadFileError) -> None:
        self.problems.extend(exc.problems)

    def entries(self, folder: str | Path) -> list[os.DirEntry[str]] | None:
        """The visible entries of ``folder`` by name (refused ones left out), or None (a problem
        recorded) when it cannot be listed."""
        try:
            return [e for e in _sorted_entries(folder) if e.path not in self.refused]
        except OSError as exc:
            self.add("unknown_file", folder, f"cannot list folder ({exc.strerror or exc})")
            return None

    def not_regular(self, entry: os.DirEntry[str]) -> bool:
        """Record a ``not_regular_file`` problem for an entry that is neither a folder nor a regular file."""
        if _is_dir(entry) or _is_file(entry):
            return False
        self.add(NOT_REGULAR_FILE, entry.path, file_type_problem(entry.path) or "not a regular file")
        return True

    def stray(self, entry: os.DirEntry[str] | Path, why: str) -> None:
        """Report a file (or every file under a folder) that is not an expected map."""
        path = Path(entry.path if isinstance(entry, os.DirEntry) else entry)
        if path.is_dir():
            for sub in self.entries(path) or ():
                self.stray(sub, why)
        elif path.suffix.lower() in MAP_SUFFIXES:
            self.add("extra_map", path, why)
        else:
            self.add("unknown_file", path, f"not a map file (expected {_SUFFIX_TEXT}); {why}")


def _explain_no_category(root: Path) -> str:
    """Error text for a submission folder holding no category folder."""
    cat = find_category(root.name)
    if cat is not None and (root / TEST).is_dir():
        return (f"{root} is a single category folder; pass the folder that contains it ({root.parent}) "
                f"and select categories with --categories {cat.code}")
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name)):
        try:
            if any(find_category(s.name) for s in sub.iterdir() if s.is_dir()):
                return f"{root} holds no category folder, but {sub} does: pass that folder instead"
        except OSError:
            continue
    names = ", ".join(c.folder for c in CATEGORIES[:2])
    return (f"{root} holds no category folder: expected <Category>/test/<folder>/<stem>.npy "
            f"(or {', '.join(MAP_SUFFIXES[1:])}) mirroring the dataset's test tree, with <Category> a "
            f"3CAD folder name or code ({names}, ..., ACC, AI, ...), e.g. "
            f"{root}/Copper_Stator/test/good/000000.npy")


def _links_outside(root: Path) -> list[tuple[Path, str]]:
    """Symbolic links under ``root`` (itself resolved) whose target lies outside it (or cannot be resolved).

    Hidden entries and the top-level ``results/`` folder are never read, so they are not searched.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not _hidden(d) and not (dirpath == str(root) and d == RESULTS_DIR)]
        for name in sorted(dirnames + [f for f in filenames if not _hidden(f)]):
            path = Path(dirpath) / name
            if path.is_symlink():
                try:
                    target = os.path.realpath(path)
                    inside = os.path.commonpath([target, str(root)]) == str(root)
                except (OSError, ValueError):
                    target, inside = "unresolvable", False
                if not inside:
                    found.append((path, target))
    return sorted(found)


def _scan_root(root: Path, refused: set[str]) -> tuple[dict[Category, Path], list[Problem]]:
    """Category folders of the submission; other entries become problems (held back).

    ``scores.csv`` and ``submission.json`` are left to their readers; ``refused`` paths
    (already reported) are skipped.
    """
    cat_dirs: dict[Category, Path] = {}
    held: list[Problem] = []
    try:
        entries = _sorted_entries(root)
    except OSError as exc:
        raise UsageError(f"cannot list {root} ({exc.strerror or exc})") from None
    for entry in entries:
        path = Path(entry.path)
        if entry.path in refused or entry.name in (SCORES_FILE, META_FILE):
            continue
        if _is_dir(entry):
            if entry.name == RESULTS_DIR:
                continue
            cat = find_category(entry.name)
            if cat is None:
                held.append(Problem("unknown_file", path, "not a 3CAD category folder (nor results/)"))
            elif cat in cat_dirs:
                held.append(Problem("duplicate_category", path,
                                    f"names the same category ({cat.code}) as {cat_dirs[cat].name}/; keep one"))
            else:
                cat_dirs[cat] = path
        elif not _is_file(entry):
            held.append(Problem(NOT_REGULAR_FILE, path, file_type_problem(path) or "not a regular file"))
        else:
            held.append(Problem("unknown_file", path,
                                f"file outside the submission layout (only {SCORES_FILE}, {META_FILE}, "
                                f"{RESULTS_DIR}/ and category folders belong here)"))
    return cat_dirs, held


def _scan_category(cat: Category, cat_dir: Path, ci: _CategoryIndex, found: dict[str, Path],
                   col: _Collector) -> None:
    """Match the map files of one category folder to its test images."""
    layout = f"maps go in {cat_dir.name}/test/<folder>/<stem>.<ext>"
    entries = col.entries(cat_dir)
    if entries is None:
        return
    for entry in entries:
        if col.not_regular(entry):
            continue
        if entry.name != TEST or not _is_dir(entry):
            col.stray(entry, f"not under {TEST}/ ({layout})")
            continue
        for folder_entry in col.entries(entry.path) or ():
            if col.not_regular(folder_entry):
                continue
            if not _is_dir(folder_entry):
                col.stray(folder_entry, f"directly under {TEST}/ ({layout})")
                continue
            folder = ci.names.get(folder_entry.name)
            if folder is None:
                known = ", ".join(sorted({f for f, _ in ci.ids}))
                col.stray(folder_entry, f"unknown folder {folder_entry.name!r}: {cat.folder}/test/ of the "
                                        f"dataset has {known}")
                continue
            for map_entry in col.entries(folder_entry.path) or ():
                if col.not_regular(map_entry):
                    continue
                if _is_dir(map_entry):
                    col.stray(map_entry, f"in a nested folder ({layout})")
                    continue
                stem, ext = os.path.splitext(map_entry.name)
                if ext.lower() not in MAP_SUFFIXES:
                    col.add("unknown_file", map_entry.path, f"not a map file (expected {_SUFFIX_TEXT})")
                    continue
                iid = ci.ids.get((folder, stem))
                if iid is None:
                    col.add("extra_map", map_entry.path,
                            f"no test image {stem!r} in {cat.folder}/test/{folder}/ of the dataset")
                elif iid in found:
                    col.add("duplicate_map", map_entry.path,
                            f"second map for {iid} (also {found[iid]}); keep exactly one map per image")
                else:
                    found[iid] = Path(map_entry.path)


def _resolve_key(key: str, index: dict[Category, _CategoryIndex],
                 selected: set[Category]) -> tuple[str | None, str | None]:
    """``(image_id, None)``, ``(None, problem)``, or ``(None, None)`` for an unscored category."""
    parts = key.strip().replace("\\", "/").split("/")
    if len(parts) != 4 or parts[1] != TEST or not all(parts):
        return None, f"image {key!r} is not <Category>/test/<defect_type>/<stem>"
    cat = find_category(parts[0])
    if cat is None:
        return None, f"image {key!r}: unknown category {parts[0]!r}"
    if cat not in selected:
        return None, None
    ci = index.get(cat)
    if ci is None:  # already reported as unknown_category
        return None, None
    folder = ci.names.get(parts[2])
    if folder is None:
        return None, f"image {key!r}: no folder {parts[2]!r} in {cat.folder}/test/ of the dataset"
    stem = parts[3]
    iid = ci.ids.get((folder, stem))
    if iid is None:
        base, ext = os.path.splitext(stem)
        if ext.lower() in _STRIPPABLE:
            iid = ci.ids.get((folder, base))
    if iid is None:
        return None, f"image {key!r}: no such test image in the dataset"
    return iid, None


def _read_scores(path: Path, index: dict[Category, _CategoryIndex], selected: Sequence[Category],
                 col: _Collector) -> dict[str, float]:
    """Parse ``scores.csv``; every problem is a ``bad_scores`` problem."""
    scores: dict[str, float] = {}
    try:
        text = read_limited(path, "bad_scores", MAX_SCORES_BYTES).decode("utf-8-sig")
    except BadFileError as exc:
        col.add_error(exc)
        return scores
    except UnicodeDecodeError as exc:
        col.add("bad_scores", path, f"not UTF-8 text (byte {exc.start})")
        return scores
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        col.add("bad_scores", path, f"not a valid CSV file ({exc})")
        return scores
    header = ",".join(SCORES_HEADER)
    if not rows or [c.strip().lower() for c in rows[0]] != list(SCORES_HEADER):
        got = ",".join(rows[0])[:80] if rows else "an empty file"
        col.add("bad_scores", Path(f"{path}:1"), f"expected the header {header!r}, got {got!r}")
        return scores
    selected_set = set(selected)
    lines: dict[str, int] = {}
    ignored: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = Path(f"{path}:{lineno}")
        if len(row) != 2:
            col.add("bad_scores", where, f"expected 2 columns ({header}), got {len(row)}")
            continue
        iid, problem = _resolve_key(row[0], index, selected_set)
        if problem is not None:
            col.add("bad_scores", where, problem)
            continue
        if iid is None:
            name = row[0].strip().replace("\\", "/").split("/")[0]
            ignored[name] = ignored.get(name, 0) + 1
            continue
        if iid in lines:
            col.add("bad_scores", where, f"{iid} already listed on line {lines[iid]}")
            continue
        lines[iid] = lineno
        text_value = row[1].strip()
        try:
            value = float(text_value)
        except ValueError:
            col.add("bad_scores", where, f"score {text_value!r} of {iid} is not a number")
            continue
        if not math.isfinite(value):
            col.add("bad_scores", where, f"score {text_value!r} of {iid} is not finite")
            continue
        scores[iid] = value
    for name, n in ignored.items():
        log.info("%s: %d row(s) of category %s ignored (not scored in this run)", path, n, name)
    for cat in selected:
        ci = index.get(cat)
        if ci is None:
            continue
        absent = [iid for iid in ci.ids.values() if iid not in lines]
        if absent and len(absent) == len(ci.ids):
            col.add("bad_scores", path, f"no score for any of the {len(absent)} test images of "
                                        f"{cat.code} ({cat.folder}); scores.csv must list every image")
        else:
            for iid in absent:
                col.add("bad_scores", path, f"no score for {iid}")
    return scores


def _parse_meta(path: Path, col: _Collector) -> Any:
    """The JSON value of ``submission.json``, or ``None`` (a ``bad_metadata`` problem recorded)."""
    try:
        text = read_limited(path, "bad_metadata", MAX_META_BYTES).decode("utf-8-sig")
    except BadFileError as exc:
        col.add_error(exc)
        return None
    except UnicodeDecodeError as exc:
        col.add("bad_metadata", path, f"not UTF-8 text (byte {exc.start})")
        return None
    if json_depth_exceeds(text, MAX_META_DEPTH):
        col.add("bad_metadata", path, f"nested more than {MAX_META_DEPTH} levels deep")
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        col.add("bad_metadata", path, f"not valid JSON ({str(exc)[:120]})")
        return None


def _read_meta(path: Path, default_method: str, col: _Collector) -> SubmissionMeta:
    """Parse ``submission.json`` (defaults when absent); problems are ``bad_metadata``."""
    default = SubmissionMeta(FORMAT_VERSION, default_method, None, {})
    if not os.path.lexists(path) or str(path) in col.refused:
        return default
    data = _parse_meta(path, col)
    if data is None:
        return default
    if not isinstance(data, dict):
        col.add("bad_metadata", path, f"expected a JSON object, got {type(data).__name__}")
        return default
    ok = True
    version = data.get("format_version", FORMAT_VERSION)
    if type(version) is not int or version != FORMAT_VERSION:
        col.add("bad_metadata", path, f"format_version {_brief(version)} is not supported "
                                      f"(this threecad reads format_version {FORMAT_VERSION})")
        ok = False
    method = data.get("method", default_method)
    if not isinstance(method, str) or not method.strip():
        col.add("bad_metadata", path, f"method must be a non-empty string, got {_brief(method)}")
        ok = False
    team = data.get("team")
    if team is not None and not isinstance(team, str):
        col.add("bad_metadata", path, f"team must be a string, got {_brief(team)}")
        ok = False
    bad_text = [k for k in META_KEYS[1:] if isinstance(data.get(k), str) and not _encodable(data[k])]
    for key in bad_text:
        col.add("bad_metadata", path, f"{key} holds characters that are not valid Unicode (lone surrogates)")
        ok = False
    if not ok:
        return default
    extra = {k: v for k, v in data.items() if k not in META_KEYS}
    return SubmissionMeta(FORMAT_VERSION, method.strip(), team, extra)


def _encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (JSON's ``\\udcff`` escapes make lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _brief(value: Any) -> str:
    """``repr(value)`` cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_contents(maps: dict[str, Path], workers: int | None, progress: bool, col: _Collector) -> None:
    """Read every map with :func:`read_map`; report unreadable and bad ones."""

    def check(path: Path) -> MapReadError | None:
        try:
            read_map(path)
        except MapReadError as exc:
            return exc
        return None

    for err in thread_map(check, maps.values(), workers=workers, progress=progress, desc="checking maps",
                          unit="map"):
        if err is not None:
            col.add(err.kind, err.path, err.message)


def _resolve_categories(names: Iterable[str]) -> list[Category]:
    try:
        return list(dict.fromkeys(get_category(n) for n in names))
    except KeyError as exc:
        raise UsageError(str(exc)) from None


def _open_root(preds_dir: str | os.PathLike[str]) -> Path:
    """The submission folder, resolved; a :class:`UsageError` when it is not a folder."""
    root = Path(preds_dir).expanduser()
    if not root.exists():
        if os.path.lexists(root):
            raise UsageError(f"{root} is a broken symbolic link or a symbolic link loop")
        raise UsageError(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (expected a submission folder holding "
                         f"<Category>/test/<folder>/<stem>.npy maps)")
    return Path(os.path.realpath(root))


def _select(cat_dirs: dict[Category, Path], wanted: list[Category] | None, root: Path,
            col: _Collector) -> list[Category]:
    """The categories to score, in the paper's order; asked-for ones without a folder are problems."""
    if wanted is None:
        return [c for c in CATEGORIES if c in cat_dirs]
    for cat in wanted:
        if cat not in cat_dirs:
            col.add("missing_category", root / cat.folder,
                    f"category {cat.code} was asked for but the submission has no folder for it")
    return [c for c in CATEGORIES if c in wanted and c in cat_dirs]


def _match_maps(selected: list[Category], cat_dirs: dict[Category, Path], index: dict[Category, _CategoryIndex],
                hint: str, col: _Collector) -> tuple[list[Category], dict[str, Path]]:
    """The scorable categories and their maps by ``image_id`` (manifest order); every mismatch a problem."""
    found: dict[str, Path] = {}
    scored: list[Category] = []
    for cat in selected:
        ci = index.get(cat)
        if ci is None:
            col.add("unknown_category", cat_dirs[cat],
                    f"the dataset has no test images of {cat.code} ({cat.folder}); it cannot be scored{hint}")
            continue
        scored.append(cat)
        _scan_category(cat, cat_dirs[cat], ci, found, col)
    maps: dict[str, Path] = {}
    for cat in scored:
        for (folder, stem), iid in index[cat].ids.items():
            path = found.get(iid)
            if path is None:
                col.add("missing_map", cat_dirs[cat] / TEST / folder / stem,
                        f"no map for test image {iid} (expected {stem}{MAP_SUFFIXES[0]} or "
                        f"{', '.join(MAP_SUFFIXES[1:])})")
            else:
                maps[iid] = path
    return scored, maps


def _read_scores_file(root: Path, index: dict[Category, _CategoryIndex], scored: list[Category],
                      col: _Collector) -> dict[str, float] | None:
    """``scores.csv`` restricted to the scored images, or ``None`` without that file."""
    path = root / SCORES_FILE
    if not os.path.lexists(path) or str(path) in col.refused:
        return None
    raw = _read_scores(path, index, scored, col)
    return {iid: raw[iid] for cat in scored for iid in index[cat].ids.values() if iid in raw}


def load_submission(preds_dir: str | os.PathLike[str], manifest: Any, *,
                    categories: Sequence[str] | None = None, check_contents: bool = False,
                    workers: int | None = None, progress: bool = False) -> Submission:
    """Load a submission folder and validate it against the dataset manifest.

    Parameters
    ----------
    preds_dir : str or Path
        The submission folder (``<Category>/test/<folder>/<stem>.<ext>`` inside).
    manifest : pandas.DataFrame
        The dataset manifest (``threecad.manifest.scan(root).manifest``; the
        ``ScanResult`` itself is accepted too); only ``split == "test"``
        rows are used. Needs ``image_id``, ``category``, ``split``, ``folder``, ``stem``
        (``defect_type`` optional: English folder names are then accepted as aliases).
    categories : sequence of str, optional
        Score only these categories (codes, folder names or aliases). Each must be in
        the submission. Default: every category folder of the submission.
    check_contents : bool
        Also read every map (:func:`eval.mapio.read_map`) and report unreadable or
        invalid ones. Off by default: the check is then structural and fast.
    workers : int, optional
        Threads for ``check_contents`` (default: all CPUs).
    progress : bool
        Show a progress bar on stderr while checking contents.

    Returns
    -------
    Submission

    Raises
    ------
    UsageError
        ``preds_dir`` is not a folder, holds no category folder, or ``categories``
        names an unknown category.
    SubmissionError
        Anything wrong with the submission; ``problems`` lists every problem found.
    """
    root = _open_root(preds_dir)
    wanted = _resolve_categories(categories) if categories else None
    index = _index_manifest(manifest)

    col = _Collector()
    for link, target in _links_outside(root):
        col.refused.add(str(link))
        col.add("link_outside", link, f"symbolic link pointing outside the submission ({target}); not read: "
                                      f"copy the file in instead")
    cat_dirs, held = _scan_root(root, col.refused)
    if not cat_dirs:
        raise UsageError(_explain_no_category(root))
    col.problems.extend(held)
    selected = _select(cat_dirs, wanted, root, col)
    scored, maps = _match_maps(selected, cat_dirs, index, "" if wanted else " (select the others with --categories)",
                               col)
    scores = _read_scores_file(root, index, scored, col)
    meta = _read_meta(root / META_FILE, root.name, col)
    if check_contents:
        _check_contents({k: p for k, p in maps.items() if not _under(p, col.refused)}, workers, progress, col)
    if col.problems:
        n = len(col.problems)
        raise SubmissionError(f"submission {root} has {n} problem{'s' if n != 1 else ''}:", col.problems)

    names = tuple(c.folder for c in scored)
    log.info("submission %s: %d maps in %d categor%s (%s)%s", root, len(maps), len(names),
             "y" if len(names) == 1 else "ies", ", ".join(c.code for c in scored),
             ", with scores.csv" if scores is not None else "")
    return Submission(root=root, meta=meta, maps=maps, scores=scores, categories=names)


def _under(path: Path, refused: set[str]) -> bool:
    """Whether ``path`` is one of ``refused`` or lies under one."""
    text = str(path)
    return any(text == r or text.startswith(r + os.sep) for r in refused)


def validate_submission(preds_dir: str | os.PathLike[str], manifest: Any, *,
                        categories: Sequence[str] | None = None, workers: int | None = None,
                        progress: bool = False) -> Submission:
    """:func:`load_submission` with its fast structural check; when that finds problems, every
    map is read too, so that the :class:`SubmissionError` lists all problems at once."""
    try:
        return load_submission(preds_dir, manifest, categories=categories, progress=progress)
    except SubmissionError:
        load_submission(preds_dir, manifest, categories=categories, check_contents=True, workers=workers,
                        progress=progress)
        raise
