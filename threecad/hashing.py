"""sha256 digests: of a file (read in chunks), of bytes, and of a file while a reader parses
it (:func:`new_sha256`, :func:`update_from_file`). One source for every caller."""

from __future__ import annotations

import hashlib
import os
from typing import IO, Any, Callable

__all__ = ["file_sha256", "bytes_sha256", "new_sha256", "update_from_file", "CHUNK_SIZE"]

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


def new_sha256() -> Any:
    """An empty sha256 digest (``hashlib``'s), for a reader that hashes what it reads."""
    return hashlib.sha256()


def update_from_file(digest: Any, fh: IO[bytes], *, limit: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Feed ``digest`` the rest of the open file ``fh`` (from its position), at most ``limit`` bytes.

    Returns the number of bytes read. A reader that parsed a header and read the data it
    announces calls this for whatever follows, so that the digest covers the whole file
    (as :func:`file_sha256` does) without a second reading.
    """
    done = 0
    while done < limit and (chunk := fh.read(min(chunk_size, limit - done))):
        digest.update(chunk)
        done += len(chunk)
    return done
