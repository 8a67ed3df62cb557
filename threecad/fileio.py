"""Reading dataset files safely: regular files only, sizes from headers before any decode.

Every reader of images and masks in the dataset core goes through here:

* :func:`file_type_problem` says why a path is not a regular file (a FIFO, a socket, a
  device, a folder, a symbolic-link loop, a broken link), following links, without
  opening it: opening a FIFO would block forever;
* :func:`read_regular` opens without blocking, checks the opened file is regular (so a
  file swapped for a FIFO in between is still refused) and reads it;
* :func:`header_size` reads an image's height and width from its header (PNG ``IHDR``
  directly, other formats through Pillow's lazy header parser), and :func:`size_problem`
  refuses sizes over :data:`MAX_IMAGE_SIDE` / :data:`MAX_IMAGE_PIXELS` before a decoder
  allocates them;
* :func:`display_name` makes a file name that is not valid UTF-8 printable.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import zlib
from pathlib import Path

__all__ = [
    "MAX_IMAGE_SIDE",
    "MAX_IMAGE_PIXELS",
    "NotRegularFileError",
    "file_type_problem",
    "file_type_name",
    "read_regular",
    "header_size",
    "png_header",
    "PNG_HEADER_BYTES",
    "size_problem",
    "is_utf8_name",
    "display_name",
]

MAX_IMAGE_SIDE = 16384
"""Largest height or width accepted (3CAD images are at most 1024 pixels a side)."""
MAX_IMAGE_PIXELS = 64 * 2**20
"""Largest height x width accepted (64 Mpx: a 16-bit RGBA decode of it is 512 MiB)."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class NotRegularFileError(OSError):
    """The path is not a regular file; ``str(exc)`` says what it is."""


_TYPE_NAMES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def file_type_name(mode: int) -> str:
    """What a non-regular file is, from its ``st_mode`` ("a named pipe (FIFO)", "a socket", ...)."""
    for test, name in _TYPE_NAMES:
        if test(mode):
            return name
    return "a special file"


def file_type_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a regular file (links followed), or ``None`` when it is one.

    Never opens the file. A path that does not exist gives ``"no such file"``.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "not a regular file (a symbolic link loop)"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "not a regular file (a broken symbolic link)"
        if exc.errno == errno.ENOENT:
            return "no such file"
        return f"cannot stat ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({file_type_name(st.st_mode)})"
    return None


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; never blocks on a FIFO.

    Raises
    ------
    NotRegularFileError
        ``path`` is not a regular file (checked before and after opening).
    OSError
        It cannot be read.
    """
    problem = file_type_problem(path)
    if problem is not None and problem != "no such file":
        raise NotRegularFileError(problem)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"not a regular file ({file_type_name(st.st_mode)})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


PNG_HEADER_BYTES = 33
"""The signature and the whole ``IHDR`` chunk (length, type, 13 bytes, CRC): what :func:`png_header` reads."""

# the channels of each PNG colour type and bit depth, as Pillow's bands of the image it opens
# (palette images are one band; Pillow opens 16-bit grey + alpha as RGBA)
_PNG_CHANNELS = {(0, 1): 1, (0, 2): 1, (0, 4): 1, (0, 8): 1, (0, 16): 1, (2, 8): 3, (2, 16): 3, (3, 1): 1,
                 (3, 2): 1, (3, 4): 1, (3, 8): 1, (4, 8): 2, (4, 16): 4, (6, 8): 4, (6, 16): 4}


def png_header(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """``(height, width, channels)`` from the first :data:`PNG_HEADER_BYTES` of a PNG file.

    ``None`` unless they are a PNG signature and a well-formed ``IHDR`` chunk (length 13,
    a valid colour type and bit depth, compression, filter and interlace methods, and a
    matching CRC): the caller then asks Pillow, which says what is wrong. Measured on the
    16,546 test images of ``scripts/bench_eval_full.py --native`` (files in the page cache):
    0.92 s through ``PIL.Image.open`` for their sizes and bands, 0.32 s from the first 33 bytes
    (the whole scan: 3.0 -> 2.0 s).
    """
    head = bytes(data[:PNG_HEADER_BYTES])
    if len(head) < PNG_HEADER_BYTES or head[:8] != _PNG_SIGNATURE or head[8:16] != b"\0\0\0\rIHDR":
        return None
    width, height, depth, colour, compression, filtering, interlace, crc = struct.unpack(">IIBBBBBI", head[16:])
    channels = _PNG_CHANNELS.get((colour, depth))
    if channels is None or compression or filtering or interlace > 1 or zlib.crc32(head[12:29]) != crc:
        return None
    return height, width, channels


def header_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """``(height, width)`` from an image file's header, without decoding pixels.

    PNG is read from its ``IHDR`` chunk; JPEG, BMP, TIFF, WebP and other formats Pillow
    knows from Pillow's header parser (which reads no pixel data). ``None`` when no
    header can be read. A header Pillow itself refuses as a decompression bomb gives
    ``(MAX_IMAGE_SIDE + 1, MAX_IMAGE_SIDE + 1)`` (over the limit; the true size unknown).
    """
    head = bytes(data[:24])
    if head[:8] == _PNG_SIGNATURE and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return height, width
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        return MAX_IMAGE_SIDE + 1, MAX_IMAGE_SIDE + 1
    except Exception:  # noqa: BLE001 - any parser failure means "no readable header"
        return None
    return height, width


def size_problem(height: int, width: int) -> str | None:
    """Why an image of this size is refused before decoding, or ``None``."""
    if height <= 0 or width <= 0:
        return f"header gives an empty size {height}x{width} (HxW); not decoded"
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE or height * width > MAX_IMAGE_PIXELS:
        return (f"header claims {height}x{width} (HxW) pixels, over the limit of {MAX_IMAGE_SIDE} a side "
                f"and {MAX_IMAGE_PIXELS // 2**20} Mpx; not decoded")
    return None


def is_utf8_name(name: str) -> bool:
    """Whether a file name from the file system is valid UTF-8 (no undecodable bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_name(path: str | os.PathLike[str]) -> Path:
    """``path`` with undecodable bytes shown as U+FFFD, safe to print and to store in tables."""
    text = os.fspath(path)
    return Path(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
