"""The record of a completed install: ``<dest>/.threecad-download.json``.

Written into the extracted tree before that tree is moved into place, so a folder with a
record is complete; its sha256 is the digest that was verified (or computed) for the archive.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..atomic import write_text_atomic

__all__ = ["RECORD_NAME", "DownloadRecord", "record_path", "read_record", "write_record"]

log = logging.getLogger(__name__)

RECORD_NAME = ".threecad-download.json"


@dataclass(frozen=True)
class DownloadRecord:
    """What was installed into a folder, and from where.

    Attributes
    ----------
    resource : str
        Resource name (``3cad-english``, ``3cad-pinyin``, ``dtd``).
    source_kind : str
        ``drive``, ``url`` or ``archive``.
    source : str
        Drive file id, URL, or absolute path of the imported archive.
    filename : str
        Archive file name.
    size : int
        Archive size in bytes.
    sha256 : str
        Archive digest.
    sha256_pinned : bool
        Whether ``sha256`` was checked against a pinned digest (else it was only computed).
    archive_format : str
        ``zip`` or ``tar`` (with its compression, e.g. ``tar.gz``).
    time : str
        When the install finished (UTC, ISO 8601).
    threecad_version : str
        Version of threecad that installed it.
    """

    resource: str
    source_kind: str
    source: str
    filename: str
    size: int
    sha256: str
    sha256_pinned: bool
    archive_format: str = ""
    time: str = ""
    threecad_version: str = __version__

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "DownloadRecord":
        """Read back :meth:`to_dict` output (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


def record_path(folder: str | Path) -> Path:
    """Where the record of ``folder`` lives."""
    return Path(folder) / RECORD_NAME


def read_record(folder: str | Path) -> DownloadRecord | None:
    """The record in ``folder``; ``None`` when there is none or it cannot be read."""
    path = record_path(folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DownloadRecord.from_dict(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("ignoring unreadable record %s: %s", path, exc)
        return None


def write_record(folder: str | Path, record: DownloadRecord) -> DownloadRecord:
    """Write ``record`` into ``folder`` (atomically), stamping the time when it has none; return what was written."""
    if not record.time:
        stamp = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        record = DownloadRecord(**{**record.to_dict(), "time": stamp})  # type: ignore[arg-type]
    write_text_atomic(record_path(folder), json.dumps(record.to_dict(), indent=2) + "\n")
    return record
