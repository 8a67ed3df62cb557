"""The submission format, in one place: names, extensions, files, limits, and safe reading.

This module is the single source of the format described in ``docs/submission-format.md``.
The reader (:mod:`threecad.eval.submission`, :mod:`threecad.eval.mapio`) and every writer
(:mod:`threecad.eval.synthetic`, :mod:`threecad.reference_models.submission`) take their names
from here::

    PREDS_DIR/
      <Category>/test/<folder>/<stem>.<ext>   one anomaly map per test image (MAP_SUFFIXES)
      scores.csv                              optional: SCORES_HEADER, one row per image
      submission.json                         optional: {"format_version": 1, "method": ..., "team": ...}
      results/                                allowed (the default output folder of threecad eval)

It also holds the limits that make reading an untrusted submission bounded in time and
memory (checked from headers and ``stat`` before anything is decoded), the helpers that open
a file only when it is a regular file (:func:`open_regular`, :func:`read_limited`; a FIFO, a
device, a socket or a symbolic-link loop is refused without blocking), and the helpers that
make a team-chosen name safe as a file name or a table cell.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
import unicodedata
from pathlib import Path, PurePosixPath
from typing import IO, Any, Mapping

from threecad.errors import BadFileError
from threecad.fileio import file_type_name, file_type_problem  # one check of a file's type, shared with the dataset readers

__all__ = [
    "FORMAT_VERSION",
    "SCORES_FILE",
    "META_FILE",
    "RESULTS_DIR",
    "TEST_DIR",
    "MAP_SUFFIXES",
    "WRITE_SUFFIX",
    "SCORES_HEADER",
    "META_KEYS",
    "MAX_MAP_PIXELS",
    "MAX_MAP_FILE_BYTES",
    "MAX_SCORES_BYTES",
    "MAX_META_BYTES",
    "MAX_META_DEPTH",
    "NOT_REGULAR_FILE",
    "image_key",
    "map_relpath",
    "scores_csv_text",
    "meta_record",
    "meta_json_text",
    "file_type_problem",
    "open_regular",
    "read_limited",
    "json_depth_exceeds",
    "safe_file_name",
    "safe_cell",
    "shown",
]

FORMAT_VERSION = 1
"""The submission format version this threecad reads and writes (``submission.json``)."""
SCORES_FILE = "scores.csv"
META_FILE = "submission.json"
RESULTS_DIR = "results"
TEST_DIR = "test"
MAP_SUFFIXES: tuple[str, ...] = (".npy", ".tif", ".tiff", ".png")
"""Map file extensions the reader accepts (case ignored), the preferred one first."""
WRITE_SUFFIX = ".npy"
"""What the project's own writers save maps as."""
SCORES_HEADER: tuple[str, str] = ("image", "score")
META_KEYS: tuple[str, ...] = ("format_version", "method", "team")
"""The keys of ``submission.json`` that threecad interprets (any other key is kept as is)."""

MAX_MAP_PIXELS = 1 << 26
"""Most values a map may hold (64 Mi, e.g. 8192 x 8192); refused from the header otherwise."""
MAX_MAP_FILE_BYTES = MAX_MAP_PIXELS * 8 + (1 << 20)
"""Largest map file read (a float64 map of :data:`MAX_MAP_PIXELS` values plus headers)."""
MAX_SCORES_BYTES = 64 << 20
"""Largest ``scores.csv`` read (the 3CAD test set needs well under 1 MiB)."""
MAX_META_BYTES = 1 << 20
"""Largest ``submission.json`` read."""
MAX_META_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in ``submission.json``."""

NOT_REGULAR_FILE = "not_regular_file"
"""Problem kind: a FIFO, device, socket, folder or link loop where a file is expected."""


# ---------------------------------------------------------------- names and writers

def image_key(category: str, folder: str, stem: str) -> str:
    """The key of one test image: ``<Category>/test/<folder>/<stem>`` (``scores.csv``'s ``image``)."""
    return f"{category}/{TEST_DIR}/{folder}/{stem}"


def map_relpath(category: str, folder: str, stem: str, suffix: str = WRITE_SUFFIX) -> PurePosixPath:
    """Where the map of one test image goes inside a submission folder."""
    if suffix.lower() not in MAP_SUFFIXES:
        raise ValueError(f"map suffix {suffix!r} is not one of {', '.join(MAP_SUFFIXES)}")
    return PurePosixPath(category, TEST_DIR, folder, f"{stem}{suffix}")


def scores_csv_text(scores: Mapping[str, float]) -> str:
    """``scores.csv`` for ``{image_key: score}``: the header, then one row per image (sorted, exact)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORES_HEADER)
    for key in sorted(scores):
        writer.writerow([key, repr(float(scores[key]))])
    return buf.getvalue()


def meta_record(method: str, team: str | None = None, **extra: Any) -> dict[str, Any]:
    """The content of ``submission.json``: the format version, ``method``, ``team`` and ``extra``."""
    clash = [k for k in extra if k in META_KEYS]
    if clash:
        raise ValueError(f"{', '.join(clash)} cannot be given as extra submission.json keys")
    record: dict[str, Any] = {"format_version": FORMAT_VERSION, "method": method}
    if team is not None:
        record["team"] = team
    record.update(extra)
    return record


def meta_json_text(record: Mapping[str, Any]) -> str:
    """``submission.json`` text for a record from :func:`meta_record` (sorted keys, indented)."""
    return json.dumps(dict(record), indent=2, sort_keys=True, allow_nan=False) + "\n"


# ---------------------------------------------------------------- reading untrusted files

def open_regular(path: str | os.PathLike[str], kind: str, *, max_bytes: int | None = None) -> IO[bytes]:
    """Open ``path`` for binary reading only if it is a regular file of at most ``max_bytes``.

    The file is opened with ``O_NONBLOCK`` (a FIFO opens at once instead of waiting for a
    writer) and checked with ``fstat`` on the open descriptor, so what is read is what was
    checked.

    Parameters
    ----------
    path : path
        The file.
    kind : str
        Problem kind of the errors other than "not a regular file".
    max_bytes : int, optional
        Refuse larger files (from ``fstat``, before reading).

    Returns
    -------
    file object
        Binary, positioned at the start; the caller closes it.

    Raises
    ------
    BadFileError
        Kind :data:`NOT_REGULAR_FILE` for anything but a regular file; ``kind`` when the
        file cannot be opened or is too large.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        problem = file_type_problem(path)
        if problem is not None and problem.startswith("not a regular file"):
            raise BadFileError(path, problem, NOT_REGULAR_FILE) from None
        raise BadFileError(path, f"cannot open ({exc.strerror or exc})", kind) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadFileError(path, f"not a regular file ({file_type_name(st.st_mode)})", NOT_REGULAR_FILE)
        if max_bytes is not None and st.st_size > max_bytes:
            raise BadFileError(path, f"{st.st_size:,} bytes, more than the limit of {max_bytes:,} for this file",
                               kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | os.PathLike[str], kind: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (:func:`open_regular`), read with a bound."""
    with open_regular(path, kind, max_bytes=max_bytes) as fh:
        try:
            data = fh.read(min(os.fstat(fh.fileno()).st_size, max_bytes) + 1)  # never a buffer of max_bytes
        except OSError as exc:
            raise BadFileError(path, f"cannot read ({exc.strerror or exc})", kind) from None
    if len(data) > max_bytes:  # grew while being read
        raise BadFileError(path, f"more than the limit of {max_bytes:,} bytes for this file", kind)
    return data


def json_depth_exceeds(text: str, limit: int = MAX_META_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays/objects deeper than ``limit`` (strings skipped).

    A linear scan, so that a hostile file cannot make the parser recurse.
    """
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


# ---------------------------------------------------------------- names made safe

def _printable(text: str) -> str:
    """``text`` with control and format characters as spaces and runs of whitespace collapsed."""
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in str(text))
    return " ".join(cleaned.split())


def safe_file_name(name: str, *, max_len: int = 64) -> str:
    """A file/folder name made from a team-chosen ``name``: ASCII letters, digits, ``._-``.

    Other characters become ``_``; a name longer than ``max_len`` (or changed beyond
    recognition) keeps its start and gets a short digest of the full name, so two long names
    stay distinct. Never empty, never hidden, never ``.``/``..``.
    """
    text = str(name)
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "method"
    if len(base) > max_len:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        base = base[: max(1, max_len - 9)].rstrip("._-") + "-" + digest
    return base


def shown(text: object) -> str:
    """``str(text)`` that can always be written as UTF-8: undecodable bytes of a file name
    (surrogate escapes) are shown as ``\\udcff``-style escapes."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def safe_cell(text: str, *, max_len: int = 80) -> str:
    """``text`` fit for one Markdown table cell or one line: printable, ``|`` escaped, at most ``max_len``."""
    clean = _printable(text)
    if len(clean) > max_len:
        clean = clean[: max_len - 1].rstrip() + "\u2026"
    return clean.replace("|", "\\|").replace("`", "'")
