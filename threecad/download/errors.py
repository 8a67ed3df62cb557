"""Errors raised while fetching, verifying and extracting a dataset archive.

All of them are :class:`~threecad.errors.ThreecadError` subclasses, so the CLI prints their
message and exits 1 (never a traceback). Each message names the URL or path concerned and
says what to do next.
"""

from __future__ import annotations

from ..errors import ThreecadError

__all__ = [
    "DownloadError",
    "NetworkError",
    "HTTPStatusError",
    "DriveError",
    "ChecksumError",
    "ArchiveError",
    "UnsafeArchiveError",
]


class DownloadError(ThreecadError):
    """A dataset archive could not be fetched, verified or installed."""


class NetworkError(DownloadError):
    """The server could not be reached or the transfer kept failing after every retry."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error that retrying will not fix (404, 403, ...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DriveError(DownloadError):
    """Google Drive answered with a page instead of the file (quota exceeded, no access, ...)."""


class ChecksumError(DownloadError):
    """The archive's sha256 differs from the pinned one."""

    def __init__(self, message: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class ArchiveError(DownloadError):
    """The archive is corrupt, of an unsupported format, or too large to extract."""


class UnsafeArchiveError(ArchiveError):
    """The archive has members that would escape the destination or are not plain files.

    ``members`` lists every refused member as ``(name, reason)``.
    """

    def __init__(self, message: str, members: list[tuple[str, str]]) -> None:
        self.members = list(members)
        super().__init__(message)
