"""``fetch_dataset``: fetch (or import) a resource's archive, verify it and install it.

Steps: check the destination (a complete, matching tree means there is nothing to do), get
the archive (resuming a partial download), verify its sha256 (or compute it when none is
pinned), extract it safely beside the destination and move it into place with a record. The
downloaded archive lives in ``.<dest>.download/`` beside the destination until the install
succeeds; an archive imported with ``archive=`` is never moved or deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from ..paths import default_data_root
from .checksum import normalize_sha256, set_aside, verify_sha256
from .drive import download_drive_file
from .errors import ArchiveError, DownloadError
from .extract import DEFAULT_MAX_BYTES, detect_format
from .http import DEFAULT_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, download_file, make_session, part_path
from .install import install_archive
from .record import RECORD_NAME, DownloadRecord, read_record
from .resources import Resource

__all__ = ["DownloadOutcome", "Fetched", "default_dest", "download_dir", "check_dest", "fetch_archive",
           "fetch_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadOutcome:
    """What :func:`fetch_dataset` did.

    Attributes
    ----------
    resource : Resource
        The resource installed.
    dest : Path
        The dataset folder.
    record : DownloadRecord
        The record in ``dest`` (the existing one when nothing was done).
    skipped : bool
        ``dest`` was already complete: nothing was downloaded or written.
    pinned : bool
        The sha256 was checked against a pinned digest (else only computed).
    """

    resource: Resource
    dest: Path
    record: DownloadRecord
    skipped: bool
    pinned: bool


def default_dest(resource: Resource) -> Path:
    """Default folder of ``resource``: the data root, or ``dtd/`` beside it for DTD."""
    root = default_data_root()
    return root.parent / "dtd" if resource.name == "dtd" else root


def download_dir(dest: Path) -> Path:
    """Where archives for ``dest`` are downloaded: ``.<dest name>.download/`` beside it."""
    return dest.parent / f".{dest.name}.download"


def check_dest(dest: Path, resource: Resource, sha256: str | None, *, force: bool = False
               ) -> DownloadRecord | None:
    """The record of ``dest`` when it already holds ``resource`` (and the pinned sha256), else ``None``.

    Raises
    ------
    UsageError
        ``dest`` is a file, a non-empty folder without a record, or holds something else
        (another resource, another digest) and ``force`` is not set.
    """
    if dest.is_symlink() and not dest.exists():
        raise UsageError(f"{dest} is a broken symbolic link; remove it or choose another --dest.")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder; choose another --dest.")
    if not dest.exists() or not any(dest.iterdir()):
        return None
    record = read_record(dest)
    if record is None:
        raise UsageError(f"{dest} is not empty and was not installed by 'threecad download' (no {RECORD_NAME}); "
                         f"refusing to overwrite it. Choose another --dest, or empty or remove it yourself.")
    if record.resource != resource.name:
        if not force:
            raise UsageError(f"{dest} holds {record.resource}, not {resource.name}; use --force to replace it, "
                             f"or choose another --dest.")
        return None
    if sha256 is not None and record.sha256 != sha256:
        if not force:
            raise UsageError(f"{dest} was installed from an archive with sha256 {record.sha256}, not the pinned "
                             f"{sha256}; use --force to download and install again.")
        return None
    return record


def _filename_from_url(url: str, fallback: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    ok = name and not name.startswith(".") and "/" not in name and "\\" not in name and len(name) < 200
    return name if ok else fallback


def _sources(resource: Resource, url: str | None) -> list[tuple[str, str]]:
    if url:
        return [("url", url)]
    out = []
    if resource.url:
        out.append(("url", resource.url))
    if resource.drive_id:
        out.append(("drive", resource.drive_id))
    return out


@dataclass(frozen=True)
class Fetched:
    """An archive :func:`fetch_archive` got: where it is, where from, and the server's name for it."""

    path: Path
    source_kind: str
    source: str
    remote_name: str | None = None


def fetch_archive(resource: Resource, folder: Path, *, url: str | None = None, retries: int = DEFAULT_RETRIES,
                  timeout: float = DEFAULT_TIMEOUT, backoff: float = DEFAULT_BACKOFF, progress: bool = False,
                  drive_url: str | None = None, force: bool = False, stall_timeout: float | None = None) -> Fetched:
    """Download ``resource`` (or ``url``) into ``folder``.

    A complete file from an earlier run of the same source is reused (unless ``force``); a
    ``.part`` file of the same source is resumed; one of another source is discarded (a
    ``<file>.source`` stamp beside it says where it came from). Sources are tried in order
    (the resource's URL, then its Drive id); the last error is raised.
    """
    sources = _sources(resource, url)
    last: DownloadError | None = None
    for i, (kind, value) in enumerate(sources):
        filename = _filename_from_url(value, resource.filename) if kind == "url" and url else resource.filename
        target = folder / filename
        part = part_path(target)
        stamp = target.with_name(target.name + ".source")
        key = f"{kind}:{value}"
        previous = stamp.read_text(encoding="utf-8").strip() if stamp.exists() else None
        if force or previous != key:
            if (target.exists() or part.exists()) and not force:
                log.info("discarding %s: it came from %s, not %s", target.name, previous, key)
            target.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
        if target.exists():
            log.info("reusing %s, downloaded completely by an earlier run", target)
            return Fetched(target, kind, value)
        folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key + "\n", encoding="utf-8")
        try:
            with make_session() as session:
                if kind == "drive":
                    transfer = download_drive_file(value, target, base_url=drive_url, session=session,
                                                   retries=retries, timeout=timeout, backoff=backoff,
                                                   progress=progress, stall_timeout=stall_timeout)
                else:
                    transfer = download_file(value, target, session=session, retries=retries, timeout=timeout,
                                             backoff=backoff, progress=progress, stall_timeout=stall_timeout)
        except DownloadError as exc:
            last = exc
            nothing = not part.exists() or part.stat().st_size == 0
            if nothing or i + 1 < len(sources):  # nothing worth resuming: leave no trace
                part.unlink(missing_ok=True)
                stamp.unlink(missing_ok=True)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            if i + 1 < len(sources):
                log.warning("%s; trying the next source (%s)", exc, sources[i + 1][0])
                continue
            raise
        return Fetched(target, kind, value, transfer.remote_name)
    assert last is not None
    raise last


def _check_url(url: str) -> None:
    """:class:`UsageError` unless ``url`` is a well-formed http(s) URL with a host."""
    bad = UsageError(f"--url {url!r} is not an http(s) URL; use --archive FILE for a file on disk.")
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url):
        raise bad
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        raise bad from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise bad


def fetch_dataset(resource: Resource, dest: str | Path | None = None, *, url: str | None = None,
                  archive: str | Path | None = None, sha256: str | None = None,
                  retries: int = DEFAULT_RETRIES, timeout: float = DEFAULT_TIMEOUT,
                  backoff: float = DEFAULT_BACKOFF, force: bool = False, progress: bool = False,
                  drive_url: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                  stall_timeout: float | None = None) -> DownloadOutcome:
    """Fetch ``resource``'s archive, verify it and install it into ``dest``.

    Parameters
    ----------
    resource
        What to install (see :mod:`threecad.download.resources`).
    dest
        Dataset folder; :func:`default_dest` when ``None``.
    url
        Fetch this HTTP(S) URL instead of the resource's sources.
    archive
        Import this archive on disk instead of downloading (it is left where it is).
    sha256
        Pinned digest (wins over ``resource.sha256``); ``None`` to only compute it.
    retries, timeout, backoff, stall_timeout
        Network behaviour (see :func:`threecad.download.http.download_file`).
    force
        Download and install again even when ``dest`` is complete.
    progress
        Progress bars on stderr.
    drive_url
        Override of the Drive ``uc`` endpoint (tests).
    max_bytes
        Cap on the bytes the archive may extract to.

    Returns
    -------
    DownloadOutcome

    Raises
    ------
    UsageError
        Bad options or a destination that must not be overwritten (exit 2).
    DownloadError
        Network, Drive, checksum or archive failures (exit 1).
    """
    if url and archive:
        raise UsageError("give either --url or --archive, not both")
    if retries < 1:
        raise UsageError(f"--retries must be at least 1 (got {retries})")
    if not timeout > 0:
        raise UsageError(f"--timeout must be positive (got {timeout})")
    if stall_timeout is not None and not stall_timeout > 0:
        raise UsageError(f"--stall-timeout must be positive (got {stall_timeout})")
    pinned = normalize_sha256(sha256) if sha256 else resource.sha256
    if url:
        _check_url(url)
    archive_path = None
    if archive is not None:
        archive_path = Path(archive).expanduser().resolve()
        if not archive_path.is_file():
            raise UsageError(f"--archive {archive}: no such file")
        detect_format(archive_path)  # a clear error now for a non-archive
    dest_path = (Path(dest).expanduser() if dest else default_dest(resource)).absolute()
    if dest_path.is_symlink() and dest_path.is_dir():
        dest_path = dest_path.resolve()  # install beside the real folder (same file system)

    existing = check_dest(dest_path, resource, pinned, force=force)
    if existing is not None and not force:
        log.info("%s already holds %s (sha256 %s); nothing to do", dest_path, resource.name, existing.sha256)
        return DownloadOutcome(resource, dest_path, existing, skipped=True, pinned=pinned is not None)
    replace = dest_path.is_dir() and any(dest_path.iterdir())

    downloads = download_dir(dest_path)
    if archive_path is not None:
        got = Fetched(archive_path, "archive", str(archive_path))
    else:
        got = fetch_archive(resource, downloads, url=url, retries=retries, timeout=timeout, backoff=backoff,
                            progress=progress, drive_url=drive_url, force=force, stall_timeout=stall_timeout)
    path = got.path
    digest = verify_sha256(path, pinned, keep_aside=archive_path is None, progress=progress)
    try:
        record = DownloadRecord(resource=resource.name, source_kind=got.source_kind, source=got.source,
                                filename=got.remote_name or path.name, size=path.stat().st_size, sha256=digest,
                                sha256_pinned=pinned is not None, archive_format=detect_format(path))
        _, written = install_archive(path, dest_path, record, replace=replace, max_bytes=max_bytes,
                                     progress=progress)
    except ArchiveError as exc:
        if archive_path is None and path.exists():  # a bad download must not be reused by the next run
            bad = set_aside(path, digest)
            exc.args = (f"{exc}\nThe downloaded file was kept aside as {bad}.",)
        raise
    if archive_path is None:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".source").unlink(missing_ok=True)
        if downloads.is_dir() and not any(downloads.iterdir()):
            downloads.rmdir()
    return DownloadOutcome(resource, dest_path, written, skipped=False, pinned=pinned is not None)
