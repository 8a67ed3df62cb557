"""sha256 digests: of a file (read in chunks) and of bytes. One source for every caller."""

from __future__ import annotations

import hashlib
import os
from typing import Callable

__all__ = ["file_sha256", "bytes_sha256", "CHUNK_SIZE"]

CHUNK_SIZE = 1 << 20


def file_sha256(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE,
                on_chunk: Callable[[int], None] | None = None) -> str:
    """The sha256 of the file at ``path`` as 64 hex digits, read ``chunk_size`` bytes at a time.

    ``on_chunk``, when given, is called with the size of every chunk read (a progress bar).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """The sha256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()
