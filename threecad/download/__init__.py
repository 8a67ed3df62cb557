"""Fetch, verify and install the 3CAD archive and the DTD textures (``threecad download``).

Modules, one job each:

* :mod:`~threecad.download.resources` - the known archives, as data;
* :mod:`~threecad.download.http` - resumable HTTP transfers with retries and a progress bar;
* :mod:`~threecad.download.drive` - Google Drive's confirm and error pages;
* :mod:`~threecad.download.checksum` - sha256 computing, pinning and setting bad files aside;
* :mod:`~threecad.download.extract` - safe zip/tar extraction;
* :mod:`~threecad.download.install` - extract beside the destination and move into place;
* :mod:`~threecad.download.record` - ``.threecad-download.json``;
* :mod:`~threecad.download.dataset` - :func:`fetch_dataset`, the whole job.

Importing this package loads ``requests`` (through the submodules); the CLI imports it only
when ``threecad download`` runs.
"""

from __future__ import annotations

from .checksum import normalize_sha256, sha256_file, verify_sha256
from .dataset import DownloadOutcome, check_dest, default_dest, fetch_archive, fetch_dataset
from .drive import DRIVE_URL, DRIVE_URL_ENV, DRIVE_USERCONTENT_URL, download_drive_file
from .errors import (ArchiveError, ChecksumError, DownloadError, DriveError, HTTPStatusError, NetworkError,
                     UnsafeArchiveError)
from .extract import DEFAULT_MAX_BYTES, extract_archive, inspect_archive
from .http import download_file
from .install import install_archive
from .record import RECORD_NAME, DownloadRecord, read_record
from .resources import DATA, RESOURCES, Resource, get_resource, resource_for

__all__ = [
    "DATA", "RESOURCES", "Resource", "get_resource", "resource_for",
    "fetch_dataset", "fetch_archive", "check_dest", "default_dest", "DownloadOutcome",
    "download_file", "download_drive_file", "DRIVE_URL", "DRIVE_USERCONTENT_URL", "DRIVE_URL_ENV",
    "sha256_file", "verify_sha256", "normalize_sha256",
    "inspect_archive", "extract_archive", "install_archive", "DEFAULT_MAX_BYTES",
    "RECORD_NAME", "DownloadRecord", "read_record",
    "DownloadError", "NetworkError", "HTTPStatusError", "DriveError", "ChecksumError", "ArchiveError",
    "UnsafeArchiveError",
]
