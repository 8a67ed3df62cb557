"""Atomic writes of a file and of a set of files, with the permissions ``open()`` would give.

One source for every writer of the project:

* :func:`atomic_path` / :func:`write_text_atomic` / :func:`write_bytes_atomic`: write to a
  temporary name in the same folder, then rename onto the target. An interrupted run leaves
  either the old file or the new one, never a partial file.
* :func:`atomic_folder`: write a *set* of files (results.json + .csv + .md, a table and its
  region table, ...) into a temporary sibling folder and publish it with one rename, so a
  reader sees the whole old set or the whole new set.
* :func:`sweep_stale`: remove the temporary files and folders that a killed run left behind
  (``.NAME.*.part`` / ``.NAME.*.tmpdir`` / ``.NAME.*.old``), called at the start of a write.
* :func:`publish_mode`: published files get the user's umask (``0o666 & ~umask`` for files,
  ``0o777 & ~umask`` for folders) instead of the 0600/0700 of :mod:`tempfile`, so a team on
  a shared server can read them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text_atomic", "write_bytes_atomic", "atomic_folder", "sweep_stale",
           "publish_mode", "current_umask", "STALE_AFTER_S"]

# A temporary file or folder older than this is taken as left behind by a killed run.
STALE_AFTER_S = 3600.0
_TEMP_SUFFIXES = (".part", ".tmpdir", ".old")
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read without changing it for other threads for longer than a call)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def publish_mode(path: str | Path, *, folder: bool | None = None) -> None:
    """Give ``path`` the mode a plain ``open()``/``mkdir()`` would: 0o666 (0o777 for folders) less the umask."""
    path = Path(path)
    if folder is None:
        folder = path.is_dir()
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def _mkdir(path: Path) -> None:
    """``mkdir -p`` (mkdir already applies the umask)."""
    path.mkdir(parents=True, exist_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file is removed when the block raises (or the process is interrupted with
    an exception); a file left by a ``kill -9`` is removed by the next :func:`sweep_stale` of
    the folder. The published file has the umask's permissions.
    """
    path = Path(path)
    _mkdir(path.parent)
    sweep_stale(path.parent, path.name)  # what a killed earlier write of this file left behind
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            publish_mode(tmp_path, folder=False)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _publish_tree(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        publish_mode(dirpath, folder=True)
        for name in filenames:
            p = Path(dirpath, name)
            if not p.is_symlink():
                publish_mode(p, folder=False)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; publish it as ``path`` when the block succeeds.

    The files written into the yielded folder appear at ``path`` together: when ``path``
    does not exist the publication is one ``rename``; when it exists (an earlier result
    set) the old folder is first renamed aside to ``.NAME.*.old`` and deleted after the new
    one is in place. A kill between those two renames leaves no ``path`` and the complete
    old set at ``.NAME.*.old``; :func:`sweep_stale` (run at the start of every write)
    removes it. On an exception the temporary folder is removed and ``path`` is untouched.

    Raises
    ------
    FileExistsError
        ``path`` exists and is not a folder (a file, a link).
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise FileExistsError(f"{path} exists and is not a folder")
    _mkdir(path.parent)
    sweep_stale(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmpdir", dir=path.parent))
    try:
        yield tmp
        _publish_tree(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "set")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sweep_stale(folder: str | Path, name: str | None = None, *, older_than_s: float = STALE_AFTER_S,
                now: float | None = None) -> list[Path]:
    """Remove the temporary files/folders that an interrupted write left in ``folder``.

    Only this module's own temporary names are touched: ``.NAME.<random>.part``,
    ``.tmpdir`` and ``.old`` (for ``name`` alone when given, else for any name), and only
    when older than ``older_than_s`` (another run may be writing a fresh one), except
    ``.old`` folders of ``name``, which are removed at once (nobody writes into them).
    Returns what was removed.
    """
    folder = Path(folder)
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        n = entry.name
        if not n.startswith(".") or not n.endswith(_TEMP_SUFFIXES):
            continue
        if name is not None and not n.startswith(f".{name}."):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if not (n.endswith(".old") and name is not None) and age < older_than_s:
            continue
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
