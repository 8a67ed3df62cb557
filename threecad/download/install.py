"""Install an archive as a dataset folder: extract beside it, then move into place.

The archive is checked in full first (nothing is written for a bad one), extracted into a
temporary folder next to the destination, unwrapped when it holds a single top-level folder,
stamped with its record, and only then renamed onto the destination. An interrupted run
leaves at most a hidden ``.<dest>.extract-*`` folder (removed by the next run), never a
destination that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..atomic import publish_mode
from .errors import DownloadError
from .extract import DEFAULT_MAX_BYTES, ArchivePlan, human_size, open_archive
from .record import DownloadRecord, write_record

__all__ = ["IGNORED_TOP", "install_archive", "unwrap_single_folder", "remove_stale"]

log = logging.getLogger(__name__)

#: Top-level entries that do not count when deciding whether an archive wraps a single folder.
IGNORED_TOP = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db"})


def unwrap_single_folder(folder: Path) -> Path:
    """``folder``'s only sub-folder when it holds nothing else (ignoring :data:`IGNORED_TOP`), else ``folder``.

    A single 3CAD category folder (an archive of one category) is not a wrapper: it stays.
    """
    from ..categories import find_category

    entries = [e for e in folder.iterdir() if e.name not in IGNORED_TOP]
    if (len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink()
            and find_category(entries[0].name) is None):
        return entries[0]
    return folder


def remove_stale(dest: Path) -> None:
    """Remove temporary folders that an interrupted earlier install into ``dest`` left beside it."""
    if not dest.parent.is_dir():
        return
    for prefix in (f".{dest.name}.extract-", f".{dest.name}.old-"):
        for stale in dest.parent.glob(prefix + "*"):
            if stale.is_dir() and not stale.is_symlink():
                log.info("removing %s, left by an interrupted run", stale)
                shutil.rmtree(stale, ignore_errors=True)


def install_archive(archive: str | Path, dest: str | Path, record: DownloadRecord, *,
                    replace: bool = False, max_bytes: int = DEFAULT_MAX_BYTES, unwrap: bool = True,
                    progress: bool = False) -> tuple[ArchivePlan, DownloadRecord]:
    """Extract ``archive`` into ``dest`` safely and atomically, with ``record`` written inside.

    Parameters
    ----------
    archive
        A zip or tar archive (verified by the caller).
    dest
        The folder to create. It must not exist, be an empty folder, or (with ``replace``)
        be a folder the caller decided to replace.
    record
        What to write into ``dest/.threecad-download.json`` (its time is stamped here).
    replace
        Replace an existing non-empty ``dest`` (only once the new tree is complete).
    max_bytes
        Cap on the bytes the archive may write.
    unwrap
        Move the content of a single top-level folder up into ``dest``.
    progress
        Show a progress bar while extracting.

    Returns
    -------
    tuple of (ArchivePlan, DownloadRecord)
        What was extracted and the record written.

    Raises
    ------
    UnsafeArchiveError, ArchiveError
        From checking or extracting the archive (``dest`` is left untouched).
    DownloadError
        ``dest`` exists and is neither empty nor to be replaced.
    """
    archive = Path(archive)
    dest = Path(dest).absolute()
    with open_archive(archive) as arc:
        plan = arc.inspect(max_bytes=max_bytes)  # refuses a bad archive before anything is written
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(dest)
        free = shutil.disk_usage(dest.parent).free
        if plan.total_size > free:
            raise DownloadError(f"{archive.name} extracts to {human_size(plan.total_size)} but only "
                               f"{human_size(free)} is free in {dest.parent}; free some space or choose "
                               f"another --dest.")
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
        try:
            arc.extract(plan, tmp, max_bytes=max_bytes, progress=progress)
            root = unwrap_single_folder(tmp) if unwrap else tmp
            if root != tmp:
                log.info("unwrapping the archive's top-level folder %s/", root.name)
            written = write_record(root, record)
            publish_mode(root, folder=True)  # the temporary folder was 0700: the tree gets the umask's mode
            _move_into_place(root, dest, replace=replace)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("installed %s into %s (%d members, %s)", archive.name, dest, len(plan.members),
             human_size(plan.total_size))
    return plan, written


def _move_into_place(root: Path, dest: Path, *, replace: bool) -> None:
    """Rename ``root`` onto ``dest``; an old ``dest`` is moved aside first and removed after."""
    old: Path | None = None
    if dest.is_symlink() or dest.exists():
        if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
            dest.rmdir()
        elif replace and dest.is_dir() and not dest.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "tree")
        else:
            raise DownloadError(f"{dest} already exists and is not an empty folder; nothing was changed.")
    try:
        os.replace(root, dest)
    except OSError as exc:
        if old is not None:
            os.replace(old / "tree", dest)
            shutil.rmtree(old, ignore_errors=True)
        raise DownloadError(f"cannot move the extracted tree to {dest}: {exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
