"""The CLI's typed options, shared by every command: one parser per kind of value.

Every number and path option of every ``threecad`` command is checked here, while the
arguments are parsed: a bad value ends the command with exit 2 and one line naming the
option (``threecad stats: error: argument --threads: expected a whole number >= 1, got
'-3'``), before any work starts. The ``add_*`` builders declare the options that several
commands share, so each option has one spelling, one meaning and one help text everywhere:

* ``--categories``: names separated by spaces or commas (``ACC,AI`` or ``ACC AI``), checked
  against the eight categories and parsed to a list of folder names;
* ``--threads N``: threads in this process; ``--workers N``: processes only (a Dask cluster's
  workers, data-loader processes), the help says which;
* ``--no-progress``: no bars and no progress lines.

Only the standard library is imported at module level (``threecad --help`` stays instant).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
from pathlib import Path
from typing import Callable, Sequence

__all__ = [
    "ThreecadArgumentParser",
    "positive_int", "non_negative_int", "seed_value", "positive_float", "open_unit_interval", "fraction",
    "port_number", "http_url", "dask_address", "sha256_hex", "non_empty", "category_names", "category_name",
    "shot_sizes", "image_side", "existing_dir", "existing_file", "existing_path", "output_dir", "output_file",
    "label_map_file", "file_or_none",
    "add_root", "add_categories", "add_label_map", "add_data_root", "add_threads", "add_workers",
    "add_retired_workers", "add_progress", "add_seed", "add_protocol", "add_json",
    "MAX_SEED", "LABEL_MAP_MAX_BYTES",
]

MAX_SEED = 2**32 - 1  # numpy's SeedSequence accepts any non-negative int; legacy seeding stops here
LABEL_MAP_MAX_BYTES = 16 << 20


class ThreecadArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``PROG: error: MESSAGE (see 'PROG --help')``."""

    def error(self, message: str):  # noqa: D102 (argparse's contract: print and exit 2)
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _fail(message: str):
    raise argparse.ArgumentTypeError(message)


# ---------------------------------------------------------------------------------------------
# numbers


def _int(text: str, what: str) -> int:
    try:
        return int(str(text).strip(), 10)
    except ValueError:
        _fail(f"expected {what}, got {text!r}")


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = _int(text, "a whole number >= 1")
    if value < 1:
        _fail(f"expected a whole number >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    value = _int(text, "a whole number >= 0")
    if value < 0:
        _fail(f"expected a whole number >= 0, got {text!r}")
    return value


def seed_value(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1."""
    value = _int(text, f"a seed from 0 to {MAX_SEED}")
    if not 0 <= value <= MAX_SEED:
        _fail(f"expected a seed from 0 to {MAX_SEED}, got {text!r}")
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        _fail(f"expected {what}, got {text!r}")
    if not math.isfinite(value):
        _fail(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, sizes)."""
    value = _float(text, "a number > 0")
    if value <= 0:
        _fail(f"expected a number > 0, got {text!r}")
    return value


def open_unit_interval(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level)."""
    value = _float(text, "a number between 0 and 1 (exclusive)")
    if not 0 < value < 1:
        _fail(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1)."""
    value = _float(text, "a fraction in [0, 1)")
    if not 0 <= value < 1:
        _fail(f"expected a fraction in [0, 1), got {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 1-65535."""
    value = _int(text, "a port from 1 to 65535")
    if not 1 <= value <= 65535:
        _fail(f"expected a port from 1 to 65535, got {text!r}")
    return value


def image_side(text: str) -> int:
    """An image side in pixels: a positive multiple of 16."""
    value = positive_int(text)
    if value % 16:
        _fail(f"expected a multiple of 16 (e.g. 256), got {text!r}")
    return value


def shot_sizes(text: str) -> list[int]:
    """k-shot sizes ``1,2,4,8`` (``''`` for none): positive whole numbers, no repeats."""
    parts = [p.strip() for p in str(text).split(",")]
    if parts == [""]:
        return []
    sizes = []
    for p in parts:
        if not p.isdigit() or int(p) < 1:
            _fail(f"expected sizes like 1,2,4,8 (whole numbers >= 1), got {text!r}")
        sizes.append(int(p))
    if len(set(sizes)) != len(sizes):
        _fail(f"a size is repeated in {text!r}")
    return sizes


# ---------------------------------------------------------------------------------------------
# words


def non_empty(text: str) -> str:
    """Any text but an empty or blank one."""
    if not str(text).strip():
        _fail("expected a value, got an empty string")
    return str(text)


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a valid port, if any)."""
    from urllib.parse import urlsplit

    hint = "expected an http:// or https:// URL (for a file on disk use --archive FILE)"
    if any(c.isspace() or ord(c) < 32 for c in str(text)):
        _fail(f"{hint}, got {text!r}")
    try:
        parts = urlsplit(str(text))
        port = parts.port
    except ValueError as exc:
        _fail(f"{hint}, got {text!r} ({exc})")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        _fail(f"{hint}, got {text!r}")
    if port == 0:
        _fail(f"{hint}, got {text!r} (port 0)")
    return str(text)


_DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def dask_address(text: str) -> str:
    """A Dask scheduler address: ``tcp://HOST:PORT`` (also ``tls``, ``ucx``, ``ws``, ``wss``) or ``HOST:PORT``."""
    from urllib.parse import urlsplit

    hint = "expected a Dask scheduler address such as tcp://10.0.0.5:8786"
    value = str(text).strip()
    if not value or any(c.isspace() for c in value):
        _fail(f"{hint}, got {text!r}")
    candidate = value if "://" in value else f"tcp://{value}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError:
        _fail(f"{hint}, got {text!r}")
    if parts.scheme.lower() not in _DASK_SCHEMES or not parts.hostname or not port \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        _fail(f"{hint}, got {text!r}")
    return value


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def sha256_hex(text: str) -> str:
    """A sha256 digest: 64 hexadecimal digits (``sha256:`` prefix allowed); returned as given."""
    value = str(text).strip()
    if not _HEX64.fullmatch(value.removeprefix("sha256:")):
        _fail(f"expected a sha256 digest (64 hexadecimal digits), got {text!r}")
    return value


def category_name(text: str) -> str:
    """One category (code, folder name or alias), returned as its folder name."""
    from .categories import UnknownCategoryError, get_category

    name = str(text).strip()
    if not name:
        _fail("expected a category name, got an empty string")
    try:
        return get_category(name).folder
    except UnknownCategoryError as exc:
        _fail(str(exc))


def category_names(text: str) -> list[str]:
    """One ``--categories`` word: names separated by commas, as folder names."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        _fail("expected category names (e.g. ACC,AI or ACC AI), got an empty string")
    if not all(parts):
        _fail(f"an empty name in {text!r}; separate categories with commas or spaces")
    return [category_name(p) for p in parts]


class _ExtendUnique(argparse.Action):
    """Collects the lists a ``nargs='+'`` option's words parse to, flattened, without repeats."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = list(getattr(namespace, self.dest, None) or [])
        for group in values:
            for v in (group if isinstance(group, list) else [group]):
                if v not in seen:
                    seen.append(v)
        setattr(namespace, self.dest, seen)


# ---------------------------------------------------------------------------------------------
# paths (checked with stat, never opened: a FIFO must not block the parser)


def _stat(text: str):
    path = Path(str(text)).expanduser()
    try:
        return path, os.stat(path)
    except FileNotFoundError:
        return path, None
    except NotADirectoryError:
        _parent_must_be_folder(path, text)
        _fail(f"{text}: a parent is not a folder")
    except OSError as exc:  # a symlink loop, a name too long, no permission on a parent
        _fail(f"{text}: {exc.strerror or exc}")


def _existing(text: str, what: str, accept: Callable[[int], bool], refusal: str) -> str:
    """``text`` when it names an existing ``what`` whose mode ``accept`` takes; else a usage error."""
    if not str(text).strip():
        _fail(f"expected a {what}, got an empty string")
    _path, st = _stat(text)
    if st is None:
        _fail(f"{text} does not exist")
    if not accept(st.st_mode):
        _fail(f"{text} {refusal}")
    return str(text)


def existing_dir(text: str) -> str:
    """A folder that exists."""
    return _existing(text, "folder", stat.S_ISDIR, "is not a folder")


def existing_file(text: str) -> str:
    """A regular file that exists (not a folder, FIFO or device)."""
    return _existing(text, "file", stat.S_ISREG, "is not a regular file")


def existing_path(text: str) -> str:
    """A folder or a regular file that exists."""
    return _existing(text, "path", lambda mode: stat.S_ISDIR(mode) or stat.S_ISREG(mode),
                     "is neither a folder nor a regular file")


def file_or_none(text: str) -> str:
    """An existing regular file, or the word ``none``."""
    return str(text) if str(text).strip().lower() == "none" else existing_file(text)


def output_dir(text: str) -> str:
    """A folder to write into: new, or an existing folder (never an existing file)."""
    if not str(text).strip():
        _fail("expected a folder, got an empty string")
    path, st = _stat(text)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        _fail(f"{text} exists and is not a folder")
    if st is None and Path(path).is_symlink():
        _fail(f"{text} is a broken symbolic link")
    _parent_must_be_folder(path, text)
    return str(text)


def _parent_must_be_folder(path: Path, text: str) -> None:
    for parent in path.absolute().parents:
        try:
            st = os.stat(parent)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            _fail(f"{text}: {exc.strerror or exc}")
        if not stat.S_ISDIR(st.st_mode):
            _fail(f"{text}: {parent} is not a folder")
        return


def output_file(suffixes: Sequence[str], what: str) -> Callable[[str], str]:
    """A file to (over)write whose name ends in one of ``suffixes``; never an existing folder."""
    def parse(text: str) -> str:
        if not str(text).strip():
            _fail("expected a file name, got an empty string")
        path, st = _stat(text)
        if path.suffix.lower() not in suffixes:
            _fail(f"{text}: unknown {what} format {path.suffix!r}; use a {' or '.join(suffixes)} file name")
        if st is not None and not stat.S_ISREG(st.st_mode):
            _fail(f"{text} exists and is not a regular file")
        _parent_must_be_folder(path, text)
        return str(text)
    return parse


def label_map_file(text: str) -> str:
    """A label map file that exists, is UTF-8 and parses (CSV ``pinyin,english`` or a JSON object)."""
    existing_file(text)
    path = Path(str(text)).expanduser()
    try:
        if path.stat().st_size > LABEL_MAP_MAX_BYTES:
            _fail(f"{text}: larger than {LABEL_MAP_MAX_BYTES >> 20} MiB, not a label map")
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"{text}: cannot read label map ({exc.strerror or exc})")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"{text}: not UTF-8 text (byte {exc.start}); save the label map as UTF-8")
    from .labels import LabelMap, LabelMapError

    try:
        LabelMap.from_file(path)
    except LabelMapError as exc:
        _fail(str(exc))
    return str(text)


# ---------------------------------------------------------------------------------------------
# builders: options several commands share


def add_root(p: argparse.ArgumentParser) -> None:
    """The positional ROOT of a 3CAD tree."""
    p.add_argument("root", metavar="ROOT", type=existing_dir, help="folder holding the category folders")


def add_categories(p: argparse.ArgumentParser, *, help: str = "only these categories") -> None:
    """``--categories NAME...``: spaces or commas; parsed to a list of folder names (None: all)."""
    p.add_argument("--categories", nargs="+", metavar="NAME", type=category_names, action=_ExtendUnique,
                   default=None,
                   help=f"{help}: codes (ACC), folder names or aliases, separated by spaces or commas")


def add_label_map(p: argparse.ArgumentParser) -> None:
    """``--label-map FILE``: checked (exists, UTF-8, parses) while parsing; the value stays the path."""
    p.add_argument("--label-map", metavar="FILE", type=label_map_file,
                   help="extra Pinyin->English defect names (UTF-8 CSV 'pinyin,english' or JSON object)")


def add_data_root(p: argparse.ArgumentParser) -> None:
    """``--data-root ROOT`` (default: $THREECAD_ROOT, then the download folder)."""
    p.add_argument("--data-root", metavar="ROOT", type=existing_dir,
                   help="the 3CAD tree (default: $THREECAD_ROOT, then the folder 'threecad download' uses)")


def add_threads(p: argparse.ArgumentParser, *, what: str = "threads reading files") -> None:
    """``--threads N``: threads in this process (default: all CPUs)."""
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help=f"{what}, in this process (default: all CPUs)")


def add_workers(p: argparse.ArgumentParser, *, what: str, default: int | None = None, group=None,
                allow_zero: bool = False) -> None:
    """``--workers N``: processes (never threads); ``what`` says which processes.

    ``allow_zero``: 0 is meaningful (data loaders: load in this process).
    """
    (group or p).add_argument("--workers", type=non_negative_int if allow_zero else positive_int, default=default,
                              metavar="N", help=f"{what} (processes, not threads)")


class _RetiredWorkers(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"argument --workers: this command runs threads, not processes; use --threads {values}")


def add_retired_workers(p: argparse.ArgumentParser) -> None:
    """A hidden ``--workers`` that points to ``--threads`` (where it used to mean threads)."""
    p.add_argument("--workers", action=_RetiredWorkers, metavar="N", help=argparse.SUPPRESS)


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress``: no bars on a terminal, no progress lines in a log."""
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (bars on a terminal; lines every 10 s in a log otherwise)")


def add_seed(p: argparse.ArgumentParser, *, help: str = "random seed") -> None:
    """``--seed N``: 0 to 2**32-1, default 0."""
    p.add_argument("--seed", type=seed_value, default=0, metavar="N", help=f"{help} (0 to 2**32-1; default 0)")


def add_protocol(p: argparse.ArgumentParser) -> None:
    """``--protocol standard|paper``."""
    p.add_argument("--protocol", choices=("standard", "paper"), default="standard",
                   help="standard (native size, exact MVTec AUPRO) or paper (the 3CAD authors' protocol)")


def add_json(p: argparse.ArgumentParser, *, help: str = "print the report as JSON") -> None:
    """``--json``: print machine-readable output on stdout."""
    p.add_argument("--json", action="store_true", help=help)
