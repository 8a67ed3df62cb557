"""sha256 of archives: compute, compare with a pinned digest, set bad files aside."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from ..errors import UsageError
from ..hashing import file_sha256
from .errors import ChecksumError

__all__ = ["normalize_sha256", "sha256_file", "set_aside", "verify_sha256"]

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"[0-9a-f]{64}")


def normalize_sha256(value: str) -> str:
    """``value`` as 64 lower-case hex digits (a ``sha256:`` prefix is accepted); ``UsageError`` otherwise."""
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    if not _HEX64.fullmatch(text):
        raise UsageError(f"--sha256 {value!r} is not a sha256 digest (64 hexadecimal digits)")
    return text


def sha256_file(path: str | Path, *, progress: bool = False, chunk_size: int = 1 << 20) -> str:
    """The sha256 of the file at ``path`` (hex), read in chunks, with an optional progress bar."""
    from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

    path = Path(path)
    with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"sha256 {path.name}",
              file=sys.stderr, disable=not progress, leave=False) as bar:
        return file_sha256(path, chunk_size=chunk_size, on_chunk=bar.update)


def set_aside(path: str | Path, digest: str) -> Path:
    """Rename ``path`` to ``<name>.bad-<first 12 digits of digest>`` beside it; return the new path."""
    path = Path(path)
    bad = path.with_name(f"{path.name}.bad-{digest[:12]}")
    os.replace(path, bad)
    return bad


def verify_sha256(path: str | Path, expected: str | None, *, keep_aside: bool = True,
                  progress: bool = False) -> str:
    """Compute the sha256 of ``path`` and compare it with ``expected`` (when given).

    Parameters
    ----------
    path
        The archive.
    expected
        The pinned digest, or ``None`` to only compute it.
    keep_aside
        On a mismatch, rename the file with :func:`set_aside` (so a later run does not reuse it).
    progress
        Show a progress bar.

    Returns
    -------
    str
        The actual digest.

    Raises
    ------
    ChecksumError
        The digests differ; the message shows both and where the file is now.
    """
    path = Path(path)
    actual = sha256_file(path, progress=progress)
    if expected is None:
        log.info("sha256 of %s: %s (nothing pinned to compare with)", path, actual)
        return actual
    expected = normalize_sha256(expected)
    if actual == expected:
        log.info("sha256 of %s verified: %s", path, actual)
        return actual
    if keep_aside:
        where = set_aside(path, actual)
        kept = f"The file was kept aside as {where}; delete it and run the command again to download anew."
    else:
        where = path
        kept = f"The file {where} was left as it is."
    raise ChecksumError(
        f"sha256 mismatch for {path.name}:\n  expected {expected}\n  actual   {actual}\n{kept} "
        f"If the authors changed the archive, verify the new file and pin its digest with --sha256 {actual}.",
        expected, actual)
