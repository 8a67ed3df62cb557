"""Submissions handed in as a ``.zip``: checked, then extracted into a temporary folder.

The archive is inspected before anything is written (``threecad.download.extract``):
members that escape the folder (``..``, absolute paths), links pointing out of it,
devices and fifos, and names that appear twice are refused, all listed at once; so are
nested archives (a submission holds maps, never another archive). Before extracting, the
sizes the members declare are checked against ``max_bytes``, against the archive's own
size (at most :data:`MAX_EXPANSION_RATIO` times, beyond :data:`RATIO_FLOOR_BYTES`: a small
zip cannot expand to gigabytes) and against the free space of the temporary folder; while
extracting, the bytes actually written are counted against the same limits.

The extracted folder is removed when the ``with`` block ends, also on ``SIGINT`` and
``SIGTERM`` (a handler raising :class:`SystemExit` is installed for the block when the
process has none); one left by ``kill -9`` is removed by a later run after an hour.
Problems found inside the extraction (by the submission loader, the scorer) name
``sub.zip/<member>``, never the temporary folder (:func:`relabel_problems`).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from threecad.atomic import sweep_stale
from threecad.categories import find_category
from threecad.errors import BadFileError, DataError, Problem, UsageError

from .submission import SubmissionError

__all__ = ["DEFAULT_MAX_SUBMISSION_BYTES", "MAX_EXPANSION_RATIO", "RATIO_FLOOR_BYTES", "MAX_MEMBERS",
           "NESTED_ARCHIVE_SUFFIXES", "submission_folder", "is_archive", "relabel_problems"]

DEFAULT_MAX_SUBMISSION_BYTES = 64 * 1024**3
"""Most bytes a zipped submission may extract to (the 3CAD test set as native-size float32
maps is about 66 GB; as 256x256 float16 maps about 2.2 GB)."""

MAX_EXPANSION_RATIO = 100.0
"""Most bytes extracted per byte of the zip (real maps compress 1-5x; a zip bomb 1000x and more)."""

RATIO_FLOOR_BYTES = 1 << 30
"""Below this many extracted bytes the expansion ratio is not checked (constant maps compress well)."""

MAX_MEMBERS = 200_000
"""Most members of a zipped submission (3CAD has a few thousand test images)."""

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".npz")

_WORK_NAME = "threecad-submission"
_active: dict[str, Path] = {}      # extracted folder (both spellings) -> the archive it came from
_active_lock = threading.Lock()


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` is a regular file to open as a zipped submission (by content, not name)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _submission_root(folder: Path) -> Path:
    """The folder holding the category folders: ``folder``, or its only subfolder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if any(p.is_dir() and find_category(p.name) for p in entries):
        return folder
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) == 1 and not [p for p in entries if p.is_file()]:
        return dirs[0]
    return folder


def relabel_problems(problems: Iterable[Problem]) -> list[Problem]:
    """``problems`` with paths inside an extracted zip shown as ``sub.zip/<member>``."""
    with _active_lock:
        roots = sorted(_active.items(), key=lambda kv: -len(kv[0]))
    out = []
    for p in problems:
        text = str(p.path)
        for folder, archive in roots:
            if text == folder or text.startswith(folder + os.sep):
                text = str(archive) + text[len(folder):]
                p = Problem(p.kind, Path(text), p.message, p.severity)
                break
        out.append(p)
    return out


def _relabel_text(text: str) -> str:
    with _active_lock:
        roots = sorted(_active.items(), key=lambda kv: -len(kv[0]))
    for folder, archive in roots:
        text = text.replace(folder, str(archive))
    return text


def _relabelled(exc: DataError) -> DataError:
    """``exc`` again, with the paths inside an extraction shown as ``sub.zip/<member>``."""
    if isinstance(exc, BadFileError):
        shown = relabel_problems(exc.problems)[0]
        try:
            return type(exc)(shown.path, shown.message, shown.kind)
        except TypeError:  # a subclass with another signature
            return exc
    if type(exc) in (DataError, SubmissionError) and exc.problems:
        return type(exc)(_relabel_text(str(exc).split("\n", 1)[0]), relabel_problems(exc.problems))
    return exc


@contextmanager
def _cleanup_on_sigterm() -> Iterator[None]:
    """Make SIGTERM raise SystemExit for the block (so ``finally`` clauses run), unless handled already."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):  # noqa: ARG001 - the signal handler's signature
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _extract(p: Path, dest: Path, max_bytes: int) -> None:
    """Inspect the zip at ``p`` and extract it into ``dest``; every refusal a :class:`SubmissionError`."""
    from threecad.download.errors import ArchiveError, DownloadError, UnsafeArchiveError
    from threecad.download.extract import open_archive

    try:
        with open_archive(p) as archive:
            plan = archive.inspect(max_bytes=max_bytes, max_ratio=MAX_EXPANSION_RATIO, ratio_floor=RATIO_FLOOR_BYTES,
                                   max_members=MAX_MEMBERS)
            nested = [m.name for m in plan.members
                      if m.kind == "file" and m.name.lower().endswith(NESTED_ARCHIVE_SUFFIXES)]
            if nested:
                raise SubmissionError(
                    f"{p}: {len(nested)} nested archive(s); a submission holds maps only (unpack them "
                    f"into the folder and zip it again). Nothing was extracted.",
                    [Problem("nested_archive", p / n, "an archive inside the submission archive") for n in nested])
            archive.extract(plan, dest, max_bytes=max_bytes)
    except UnsafeArchiveError as exc:
        raise SubmissionError(f"{p}: unsafe archive, nothing was extracted",
                              [Problem("unsafe_member", p / name, why) for name, why in exc.members]) from None
    except ArchiveError as exc:
        raise SubmissionError(f"{p}: {exc}", [Problem("bad_archive", p, str(exc).replace(str(dest), str(p)))]) \
            from None
    except DownloadError as exc:  # writing failed (disk full, permissions)
        raise SubmissionError(f"{p}: {exc}", [Problem("bad_archive", p, str(exc).replace(str(dest), str(p)))]) \
            from None


@contextmanager
def submission_folder(path: str | Path, *, max_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES,
                      tmp_dir: str | Path | None = None) -> Iterator[Path]:
    """The submission at ``path`` as a folder: itself, or a ``.zip`` safely extracted.

    The default method name of a zipped submission is the archive's name without
    ``.zip`` (the extracted folder is named after it), unless the zip wraps one folder.
    A :class:`~threecad.errors.DataError` raised in the block has its problems' paths shown
    as ``path/<member>`` (see :func:`relabel_problems`).

    Raises
    ------
    UsageError
        ``path`` does not exist or is neither a folder nor a zip archive.
    SubmissionError
        The archive holds unsafe or duplicate members or nested archives (every one listed),
        is damaged, would expand beyond the limits or the free space.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        yield p
        return
    if not os.path.lexists(p):
        raise UsageError(f"{p} does not exist")
    if not is_archive(p):
        raise UsageError(f"{p} is neither a submission folder nor a .zip of one")
    parent = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    sweep_stale(parent, _WORK_NAME)
    with _cleanup_on_sigterm():
        work = Path(tempfile.mkdtemp(prefix=f".{_WORK_NAME}.", suffix=".tmpdir", dir=parent))
        keys = [str(work), os.path.realpath(work)]
        try:
            name = p.name[:-4] if p.name.lower().endswith(".zip") else p.name
            dest = work / (name or "submission")
            dest.mkdir()
            with _active_lock:
                for k in (str(dest), os.path.realpath(dest)):
                    _active[k] = p
            _extract(p, dest, max_bytes)
            try:
                yield _submission_root(dest)
            except DataError as exc:
                raise _relabelled(exc) from None
        finally:
            with _active_lock:
                for k in list(_active):
                    if any(k == w or k.startswith(w + os.sep) for w in keys):
                        del _active[k]
            shutil.rmtree(work, ignore_errors=True)
