"""Submissions handed in as a ``.zip``: checked, then extracted into a temporary folder.

The archive is inspected before anything is written (``threecad.download.extract``):
members that escape the folder (``..``, absolute paths), links pointing out of it,
devices and fifos are refused, all listed at once; so are nested archives (a submission
holds maps, never another archive) and a total size above ``max_bytes``. The
extracted folder is removed when the ``with`` block ends.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from threecad.categories import find_category
from threecad.errors import Problem, UsageError

from .submission import SubmissionError

__all__ = ["DEFAULT_MAX_SUBMISSION_BYTES", "NESTED_ARCHIVE_SUFFIXES", "submission_folder", "is_archive"]

DEFAULT_MAX_SUBMISSION_BYTES = 64 * 1024**3
"""Most bytes a zipped submission may extract to (the 3CAD test set as native-size float32
maps is about 66 GB; as 256x256 float16 maps about 2.2 GB)."""

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".npz")


def is_archive(path: str | Path) -> bool:
    """Whether ``path`` is a file to open as a zipped submission (by content, not name)."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _submission_root(folder: Path) -> Path:
    """The folder holding the category folders: ``folder``, or its only subfolder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if any(p.is_dir() and find_category(p.name) for p in entries):
        return folder
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) == 1 and not [p for p in entries if p.is_file()]:
        return dirs[0]
    return folder


@contextmanager
def submission_folder(path: str | Path, *, max_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES,
                      tmp_dir: str | Path | None = None) -> Iterator[Path]:
    """The submission at ``path`` as a folder: itself, or a ``.zip`` safely extracted.

    The default method name of a zipped submission is the archive's name without
    ``.zip`` (the extracted folder is named after it), unless the zip wraps one folder.

    Raises
    ------
    UsageError
        ``path`` does not exist or is neither a folder nor a zip archive.
    SubmissionError
        The archive holds unsafe members or nested archives (every one listed), is damaged,
        or is larger than ``max_bytes``.
    """
    from threecad.download.errors import ArchiveError, UnsafeArchiveError
    from threecad.download.extract import open_archive

    p = Path(path).expanduser()
    if p.is_dir():
        yield p
        return
    if not p.exists():
        raise UsageError(f"{p} does not exist")
    if not is_archive(p):
        raise UsageError(f"{p} is neither a submission folder nor a .zip of one")
    work = Path(tempfile.mkdtemp(prefix="threecad-submission-", dir=tmp_dir))
    try:
        name = p.name[:-4] if p.name.lower().endswith(".zip") else p.name
        dest = work / (name or "submission")
        dest.mkdir()
        try:
            with open_archive(p) as archive:
                plan = archive.inspect(max_bytes=max_bytes)
                nested = [m.name for m in plan.members
                          if m.kind == "file" and m.name.lower().endswith(NESTED_ARCHIVE_SUFFIXES)]
                if nested:
                    raise SubmissionError(
                        f"{p}: {len(nested)} nested archive(s); a submission holds maps only (unpack them "
                        f"into the folder and zip it again). Nothing was extracted.",
                        [Problem("nested_archive", p / n, "an archive inside the submission archive")
                         for n in nested])
                archive.extract(plan, dest, max_bytes=max_bytes)
        except UnsafeArchiveError as exc:
            raise SubmissionError(f"{p}: unsafe archive, nothing was extracted",
                                  [Problem("unsafe_member", p / name_, why) for name_, why in exc.members]) from None
        except ArchiveError as exc:
            raise SubmissionError(f"{p}: {exc}", [Problem("bad_archive", p, str(exc))]) from None
        yield _submission_root(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
