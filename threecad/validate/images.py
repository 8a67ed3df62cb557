"""Reading every file of a tree once: PNG structure, full decode, sha256, perceptual hash.

Each image file is read into memory once. From those bytes :func:`inspect_image`

* hashes them with sha256 (byte-identical duplicates),
* walks the PNG chunk structure (:func:`check_png`): every chunk complete, every CRC
  right, ``IEND`` present and last. This catches truncation that decoders tolerate:
  Pillow loads a PNG without ``IEND``; OpenCV, depending on its version and build,
  may return a partial image for a file cut short. Checking the structure first also
  keeps libpng from printing its own error lines for the files it would reject,
* decodes the pixels fully with OpenCV (which releases the GIL, so threads scale),
* and keeps a small grey thumbnail of that same decode
  (:func:`threecad.validate.pixels.thumbnail`) and its perceptual hash
  (:func:`perceptual_hash`), for the near-duplicate check.

Masks are checked for structure and channel count only; their pixels are read by
:func:`threecad.image_stats.compute_image_stats`, which owns the mask checks.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Problem, Severity
from ..fileio import NotRegularFileError, header_size, read_regular, size_problem
from ..parallel import thread_map

__all__ = [
    "PNG_SIGNATURE",
    "HASH_BITS",
    "HASH_SIZE",
    "HASH_BAND",
    "PngInfo",
    "FileCheck",
    "check_png",
    "perceptual_hash",
    "inspect_image",
    "inspect_mask",
    "inspect_files",
]

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Perceptual hash: the image in grey, squashed to HASH_SIZE x HASH_SIZE by area averaging,
# its 2-D DCT, the HASH_BAND x HASH_BAND coefficients just past the DC row and column
# (frequencies 1..16 cycles per image side), one bit per coefficient: above their median.
HASH_SIZE = 128
HASH_BAND = 16
HASH_BITS = HASH_BAND * HASH_BAND  # 256

# PNG colour type -> number of bands as Pillow counts them (palette = one band, "P").
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_MAX_CHUNK = 2**31 - 1


@dataclass(frozen=True)
class PngInfo:
    """What the chunk walk of a PNG file found.

    Attributes
    ----------
    error : str or None
        Why the file is not a complete PNG, or ``None`` when it is.
    truncated : bool
        The error is a file cut short (a chunk running past the end, or no ``IEND``).
    height, width, channels : int
        From the ``IHDR`` chunk (-1 when there is none).
    trailing : int
        Bytes after the ``IEND`` chunk.
    """

    error: str | None
    truncated: bool = False
    height: int = -1
    width: int = -1
    channels: int = -1
    trailing: int = 0


def check_png(data: bytes | memoryview) -> PngInfo:
    """Walk the chunks of a PNG file: each complete with a right CRC, ``IEND`` last.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    PngInfo
        ``error`` is ``None`` for a structurally complete file.
    """
    view = memoryview(data)
    n = len(view)
    if bytes(view[:8]) != PNG_SIGNATURE:
        return PngInfo("not a PNG file (no PNG signature)")
    pos = 8
    last = None
    height = width = channels = -1
    while True:
        if pos == n:
            if last is None:
                return PngInfo("PNG signature but no chunks (file cut short)", truncated=True)
            return PngInfo(f"file ends after chunk {last} without the closing IEND chunk "
                           f"(cut short)", truncated=True, height=height, width=width, channels=channels)
        if pos + 12 > n:
            return PngInfo(f"file cut short: {n - pos} stray bytes at offset {pos} where a chunk "
                           f"header was expected", truncated=True, height=height, width=width,
                           channels=channels)
        length, ctype = struct.unpack_from(">I4s", view, pos)
        name = ctype.decode("latin-1")
        if length > _MAX_CHUNK:
            return PngInfo(f"corrupt chunk header at offset {pos} (length {length})",
                           height=height, width=width, channels=channels)
        end = pos + 12 + length
        if end > n:
            return PngInfo(f"file cut short: chunk {name} at offset {pos} needs {length} bytes of "
                           f"data but the file ends {end - n} bytes early", truncated=True,
                           height=height, width=width, channels=channels)
        (crc,) = struct.unpack_from(">I", view, end - 4)
        if zlib.crc32(view[pos + 4:end - 4]) != crc:
            return PngInfo(f"CRC mismatch in chunk {name} at offset {pos} (corrupt data)",
                           height=height, width=width, channels=channels)
        if last is None:
            if ctype != b"IHDR" or length < 13:
                return PngInfo(f"first chunk is {name}, not IHDR (corrupt PNG)")
            width, height, _depth, colour = struct.unpack_from(">IIBB", view, pos + 8)
            channels = _PNG_CHANNELS.get(colour, -1)
        last = name
        pos = end
        if ctype == b"IEND":
            return PngInfo(None, height=height, width=width, channels=channels, trailing=n - pos)


def perceptual_hash(image: np.ndarray) -> np.ndarray:
    """256-bit DCT hash of an image (grey or colour, 8 or 16 bit).

    The image is converted to grey, squashed to 128 x 128 by area averaging, and
    transformed by a 2-D DCT; the 16 x 16 coefficients of frequencies 1..16 (the DC
    row and column left out) give one bit each: 1 above their median. Area averaging
    removes pixel noise and the blocking of JPEG-like compression; the 16 x 16 band
    keeps enough structure to tell apart distinct photos of one product taken by one
    camera, which a plain 8 x 8 (64-bit) pHash rates as near-identical.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        As decoded by OpenCV (colour in BGR or BGRA order).

    Returns
    -------
    ndarray of shape (4,), uint64
        The 256 bits, packed (compare with :func:`threecad.validate.duplicates.hamming`).
    """
    import cv2

    from .pixels import to_grey

    small = cv2.resize(to_grey(image), (HASH_SIZE, HASH_SIZE), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(np.asarray(small, dtype=np.float32))[1:HASH_BAND + 1, 1:HASH_BAND + 1].ravel()
    bits = coeffs > np.median(coeffs)
    return np.packbits(bits).view(np.uint64).copy()


@dataclass
class FileCheck:
    """The outcome of reading one file.

    ``height``, ``width`` and ``channels`` come from the PNG header (or the decode for a
    non-PNG file); ``sha256`` is set for images that could be read, ``phash`` and ``thumb``
    (:func:`threecad.validate.pixels.thumbnail`) for images that decoded when asked for.
    """

    path: str
    size: int = -1
    sha256: str | None = None
    height: int = -1
    width: int = -1
    channels: int = -1
    decoded: bool = False
    phash: np.ndarray | None = None
    thumb: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error was found in the file (warnings allowed)."""
        return not any(p.is_error for p in self.problems)


def _read(path: str, check: FileCheck, unreadable_kind: str) -> bytes | None:
    """The file's bytes (a regular file only: never blocks on a FIFO), or ``None`` with a problem."""
    try:
        data = read_regular(path)
    except NotRegularFileError as exc:
        check.problems.append(Problem("not_regular_file", Path(path), str(exc)))
        return None
    except OSError as exc:
        check.problems.append(Problem(unreadable_kind, Path(path), f"cannot read file ({exc.strerror})"))
        return None
    check.size = len(data)
    if not data:
        check.problems.append(Problem(unreadable_kind, Path(path), "empty file (0 bytes)"))
        return None
    return data


def _describe_format(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return "not PNG"


def inspect_image(path: str, *, want_hash: bool = True) -> FileCheck:
    """Read one image file once: sha256, PNG structure, full decode, perceptual hash.

    Problems (kinds): ``not_regular_file`` (a FIFO, a folder, a link loop...: never
    opened for reading), ``unreadable_image`` (cannot read, or no decoder accepts it),
    ``truncated_image`` (cut short, or no ``IEND``), ``corrupt_image`` (bad CRC or chunk
    structure, or pixel data that does not decode), ``image_too_large`` (the header's size
    is over :data:`threecad.fileio.MAX_IMAGE_PIXELS`; checked before decoding),
    ``not_png`` and ``trailing_data`` (warnings).

    Parameters
    ----------
    path : str
        The image file.
    want_hash : bool
        Compute the perceptual hash (skipped when near-duplicates are not looked for).

    Returns
    -------
    FileCheck
    """
    import cv2

    check = FileCheck(path)
    data = _read(path, check, "unreadable_image")
    if data is None:
        return check
    check.sha256 = hashlib.sha256(data).hexdigest()
    p = Path(path)
    png = check_png(data)
    check.height, check.width, check.channels = png.height, png.width, png.channels
    is_png = data[:8] == PNG_SIGNATURE
    if png.error is not None and is_png:
        kind = "truncated_image" if png.truncated else "corrupt_image"
        check.problems.append(Problem(kind, p, png.error))
        return check  # never hand a broken PNG to libpng (it prints to stderr, and may half-decode it)
    size = header_size(data)
    too_big = size_problem(*size) if size is not None else None
    if too_big is not None:
        check.problems.append(Problem("image_too_large", p, too_big))
        check.height = check.width = -1  # not a size to compare with published ranges or masks
        return check
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        if is_png:
            check.problems.append(Problem("corrupt_image", p, "complete PNG structure, but its pixel "
                                                             "data does not decode"))
        else:
            check.problems.append(Problem("unreadable_image", p, f"cannot decode ({_describe_format(data)})"))
        return check
    check.decoded = True
    if not is_png:
        check.problems.append(Problem("not_png", p, f"file content is {_describe_format(data)}, not PNG; "
                                                    f"decoded anyway", Severity.WARNING))
        check.height, check.width = array.shape[:2]
        check.channels = 1 if array.ndim == 2 else int(array.shape[2])
    elif png.trailing:
        check.problems.append(Problem("trailing_data", p, f"{png.trailing} bytes after the IEND chunk",
                                      Severity.WARNING))
    if want_hash:
        from .pixels import thumbnail

        check.thumb = thumbnail(array)
        check.phash = perceptual_hash(check.thumb)
    return check


def inspect_mask(path: str) -> FileCheck:
    """Read one mask file's structure and channel count (its pixels are read elsewhere).

    Problems (kinds): ``not_regular_file``, ``unreadable_mask``, ``truncated_mask``,
    ``image_too_large`` (header size over the limit), ``mask_channels`` (more than one
    channel), ``trailing_data`` (warning).
    """
    check = FileCheck(path)
    data = _read(path, check, "unreadable_mask")
    if data is None:
        return check
    p = Path(path)
    png = check_png(data)
    if data[:8] == PNG_SIGNATURE:
        if png.error is not None:
            kind = "truncated_mask" if png.truncated else "unreadable_mask"
            check.problems.append(Problem(kind, p, png.error))
            return check
        check.height, check.width, check.channels = png.height, png.width, png.channels
        if png.trailing:
            check.problems.append(Problem("trailing_data", p, f"{png.trailing} bytes after the IEND chunk",
                                          Severity.WARNING))
    else:
        import io

        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as im:
                check.width, check.height = im.size
                check.channels = len(im.getbands())
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            check.problems.append(Problem("unreadable_mask", p, f"cannot read mask header ({exc})"))
            return check
    too_big = size_problem(check.height, check.width)
    if too_big is not None:
        check.problems.append(Problem("image_too_large", p, too_big))
        return check
    if check.channels > 1:
        check.problems.append(Problem("mask_channels", p, f"mask has {check.channels} channels; "
                                                          f"expected a single-channel (grey) PNG"))
    return check


def inspect_files(jobs: Sequence[tuple[str, str]], *, want_hash: bool = True, workers: int | None = None,
                  progress: bool = False, desc: str = "validate") -> list[FileCheck]:
    """Inspect many files in a thread pool, in order.

    Parameters
    ----------
    jobs : sequence of (kind, path)
        ``kind`` is ``"image"`` or ``"mask"``.
    want_hash : bool
        Compute perceptual hashes of images.
    workers : int, optional
        Threads (default: the number of CPUs).
    progress : bool
        Show a progress bar on standard error.
    desc : str
        Label of the progress bar.

    Returns
    -------
    list of FileCheck
        One per job, in the order of ``jobs``.
    """
    def one(job: tuple[str, str]) -> FileCheck:
        kind, path = job
        return inspect_image(path, want_hash=want_hash) if kind == "image" else inspect_mask(path)

    return thread_map(one, jobs, workers=workers, progress=progress, desc=desc, unit="file")
