"""Reading one anomaly map safely (``.npy``, ``.tif``/``.tiff``, ``.png``).

The contract is ``docs/submission-format.md``: a map is a 2-D array of any real or integer dtype,
higher = more anomalous, only the order of values matters, NaN and infinity are errors.

Values are returned exactly as the submitter stored them: never rescaled, clipped,
normalised or cast. The only conversions are lossless ones undoing a decoder's view of
the file (a big-endian array brought to native byte order, a signed 8-bit TIFF that
Pillow reads as unsigned bytes viewed as ``int8`` again, ...).

* ``.npy``: loaded with ``allow_pickle=False`` always; any dtype of kind bool, int,
  unsigned or float.
* ``.tif``/``.tiff``: single page, single channel, read with Pillow: float32 (the
  documented format), and also 1-bit, 8/16/32-bit signed or unsigned integers.
* ``.png``: 8- or 16-bit grey (``uint8``/``uint16``), decoded with OpenCV.

A leading or trailing singleton axis (``(1, H, W)`` or ``(H, W, 1)``) is dropped.

Hostile files: only a regular file is opened (:func:`threecad.eval.format.open_regular`:
a FIFO, device or link loop is refused without blocking), no larger than
:data:`~threecad.eval.format.MAX_MAP_FILE_BYTES`. Every format's header is parsed here and
checked before any decoding: a map of more than :data:`MAX_MAP_PIXELS` values (64 Mi, e.g.
8192 x 8192; the largest 3CAD image is far smaller), an ``.npy`` of any header version
(1.0, 2.0, 3.0) whose dtype is not a plain bool/integer/float (structured, bytes, object,
sub-array) or whose data is shorter than its header says, a PNG or TIFF whose header
announces too many pixels or an unsupported sample type, are refused from the header.
Every failure is a :class:`MapReadError` (a :class:`threecad.errors.DataError`).

:func:`read_map_digest` also returns the file's sha256 from the same reading (the scorer
records it in ``results.json``): a map is opened and read once, and the digest is of the
bytes that were decoded.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import struct
from pathlib import Path
from typing import IO

import numpy as np

from threecad.errors import BadFileError
from threecad.hashing import new_sha256, update_from_file

from .format import MAP_SUFFIXES, MAX_MAP_FILE_BYTES, MAX_MAP_PIXELS, open_regular

__all__ = [
    "MAP_SUFFIXES",
    "MapReadError",
    "BAD_MAP",
    "UNREADABLE_MAP",
    "read_map",
    "read_map_digest",
    "check_map",
    "MAX_MAP_PIXELS",
]

log = logging.getLogger(__name__)

BAD_MAP = "bad_map"
"""Problem kind: the file decodes but is not a valid map (shape, dtype, NaN, pickle)."""
UNREADABLE_MAP = "unreadable_map"
"""Problem kind: the file cannot be read or decoded at all."""

_NPY_MAX_HEADER = 10_000  # as numpy.load's default max_header_size
_DEFLATE_MAX_RATIO = 1032  # deflate never expands data by more (a PNG claiming more pixels is forged)
# TIFF Compression tag -> the most its decoder can expand data: none, LZW, PackBits, deflate (two codes)
_TIFF_MAX_RATIO = {1: 1, 5: 4096, 32773: 64, 8: _DEFLATE_MAX_RATIO, 32946: _DEFLATE_MAX_RATIO}
_NPY_MAGIC = b"\x93NUMPY"
# the header numpy.save writes, read without the parser: ast.literal_eval of the header was 5 %
# of the time the scoring threads held the GIL on scripts/bench_eval_full.py --native
_NPY_INT = r"(?:0|[1-9][0-9]*)"
_NPY_SAVED_HEADER = re.compile(
    r"\{'descr': '([<>|=][a-zA-Z][0-9]{1,2})', 'fortran_order': (True|False), "
    rf"'shape': \((|{_NPY_INT},|{_NPY_INT}(?:, {_NPY_INT})+)\), \}} *\n")
_ZIP_MAGIC = b"PK\x03\x04"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SUFFIX_TEXT = ", ".join(MAP_SUFFIXES)

# TIFF (SampleFormat, BitsPerSample) -> the dtype the stored samples have.
_TIFF_DTYPES: dict[tuple[int, int], np.dtype] = {
    (1, 1): np.dtype(bool),
    (1, 8): np.dtype(np.uint8),
    (2, 8): np.dtype(np.int8),
    (1, 16): np.dtype(np.uint16),
    (2, 16): np.dtype(np.int16),
    (1, 32): np.dtype(np.uint32),
    (2, 32): np.dtype(np.int32),
    (3, 32): np.dtype(np.float32),
}
_TIFF_GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_PNG_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGBA"}


class MapReadError(BadFileError, ValueError):
    """A map file that cannot be used; ``str()`` names the file and the problem.

    A :class:`threecad.errors.BadFileError` (so a :class:`~threecad.errors.DataError`),
    and a ``ValueError`` for callers that catch that.

    Parameters
    ----------
    path : str or Path
        The map file.
    message : str
        What is wrong with it.
    kind : str
        :data:`BAD_MAP` (decodes, but is not a valid map), :data:`UNREADABLE_MAP`, or
        ``not_regular_file`` (a FIFO, device, folder or link loop).
    """

    def __init__(self, path: str | os.PathLike[str], message: str, kind: str = BAD_MAP) -> None:
        super().__init__(path, message, kind)


def check_map(arr: np.ndarray) -> str | None:
    """Return what makes ``arr`` an invalid map, or ``None`` when it is valid.

    A valid map is a non-empty 2-D array of a bool, integer or real floating dtype with
    no NaN or infinite value. Singleton axes are not dropped here (see :func:`read_map`).

    Parameters
    ----------
    arr : ndarray
        The map as held in memory.

    Returns
    -------
    str or None
        The problem in words, or ``None``.
    """
    arr = np.asanyarray(arr)
    dtype = arr.dtype
    if dtype.names is not None:
        return f"structured dtype {dtype}; expected a real or integer dtype"
    if dtype.kind == "O":
        return "object array; expected a real or integer dtype"
    if dtype.kind not in "biuf":
        return f"unsupported dtype {dtype}; expected a real or integer dtype"
    if arr.ndim != 2:
        return f"{arr.ndim}-D array of shape {tuple(arr.shape)}; expected a 2-D (height, width) map"
    if arr.size == 0:
        return f"empty map (shape {tuple(arr.shape)})"
    if dtype.kind == "f" and not np.isfinite(arr).all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        parts = [f"{n} {what}" for n, what in ((n_nan, "NaN"), (n_inf, "infinite")) if n]
        return f"contains {' and '.join(parts)} value{'s' if n_nan + n_inf != 1 else ''}; maps must be finite"
    return None


def read_map(path: str | os.PathLike[str], *, mmap: bool = False) -> np.ndarray:
    """Read one anomaly map as a 2-D array, values and dtype as stored.

    Parameters
    ----------
    path : str or Path
        A ``.npy``, ``.tif``, ``.tiff`` or ``.png`` file (suffix case ignored).
    mmap : bool
        Memory-map ``.npy`` files read-only (``mmap_mode="r"``) instead of reading them
        (after the same header checks).

    Returns
    -------
    ndarray
        2-D, finite. ``.npy``: dtype as stored; ``.tif``: float32 or the stored integer
        dtype; ``.png``: uint8 or uint16.

    Raises
    ------
    MapReadError
        The file is not a regular file (``kind == "not_regular_file"``), cannot be read
        (``"unreadable_map"``) or is not a valid map (``"bad_map"``).
    """
    return _read(Path(path), mmap, None)


def read_map_digest(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """:func:`read_map`, and the sha256 of the file (64 hex digits) from the same reading.

    The file is opened once and its bytes are hashed as they are read (``.npy``: the
    header, the data, anything after it; ``.png``: the bytes decoded; ``.tif``: read again
    through the same open file), so the digest is of the very file that was decoded.

    Raises
    ------
    MapReadError
        As :func:`read_map`.
    """
    digest = new_sha256()
    arr = _read(Path(path), False, digest)
    return arr, digest.hexdigest()


def _read(path: Path, mmap: bool, digest) -> np.ndarray:
    """:func:`read_map`; ``digest``, when given, is fed every byte of the file."""
    suffix = path.suffix.lower()
    readers = {".npy": lambda fh: _read_npy(path, fh, mmap, digest), ".tif": lambda fh: _read_tiff(path, fh, digest),
               ".tiff": lambda fh: _read_tiff(path, fh, digest), ".png": lambda fh: _read_png(path, fh, digest)}
    reader = readers.get(suffix)
    if reader is None:
        raise MapReadError(path, f"unsupported map format {path.suffix!r}; expected {_SUFFIX_TEXT}",
                           UNREADABLE_MAP)
    try:
        fh = open_regular(path, UNREADABLE_MAP, max_bytes=MAX_MAP_FILE_BYTES)
    except BadFileError as exc:
        raise MapReadError(path, exc.message, exc.kind) from None
    with fh:
        arr = reader(fh)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    problem = check_map(arr)
    if problem is not None:
        raise MapReadError(path, problem, BAD_MAP)
    return arr


def _hash_whole(path: Path, fh: IO[bytes], digest) -> None:
    """Feed ``digest`` the whole open file, from its start (the reader is done with it)."""
    try:
        fh.seek(0)
        update_from_file(digest, fh, limit=MAX_MAP_FILE_BYTES)
    except OSError as exc:
        raise MapReadError(path, f"cannot read ({exc.strerror or exc})", UNREADABLE_MAP) from None


def _too_big(path: Path, shape: tuple[int, ...]) -> None:
    n = 1
    for d in shape:
        n *= int(d)
    if n > MAX_MAP_PIXELS:
        dims = " x ".join(str(int(d)) for d in shape)
        raise MapReadError(path, f"{dims} = {n:,} values, more than the limit of {MAX_MAP_PIXELS:,} per map; "
                                 f"save maps at the image size or smaller", BAD_MAP)


def _file_size(fh: IO[bytes]) -> int:
    return os.fstat(fh.fileno()).st_size


# ---------------------------------------------------------------- .npy

def _npy_refuse_magic(path: Path, head: bytes) -> None:
    if head.startswith(_ZIP_MAGIC):
        raise MapReadError(path, "an .npz archive, not an .npy array; save one map per file "
                                 "with numpy.save", UNREADABLE_MAP)
    if head[:1] == b"\x80":
        raise MapReadError(path, "pickled data; pickled arrays are refused (save a numeric array "
                                 "with numpy.save)", BAD_MAP)
    what = "an empty file" if not head else "not an .npy file (no NumPy header)"
    raise MapReadError(path, what, UNREADABLE_MAP)


def _npy_header(path: Path, fh: IO[bytes]) -> dict:
    """The header dictionary of an ``.npy`` file (versions 1.0, 2.0 and 3.0), parsed safely."""
    head = fh.read(8)
    if not head.startswith(_NPY_MAGIC) or len(head) < 8:
        _npy_refuse_magic(path, head)
    version = (head[6], head[7])
    if version == (1, 0):
        size_bytes, encoding = 2, "latin1"
    elif version in ((2, 0), (3, 0)):
        size_bytes, encoding = 4, "latin1" if version == (2, 0) else "utf8"
    else:
        raise MapReadError(path, f".npy format version {version[0]}.{version[1]} is not supported "
                                 f"(1.0, 2.0, 3.0 are)", UNREADABLE_MAP)
    raw_len = fh.read(size_bytes)
    if len(raw_len) < size_bytes:
        raise MapReadError(path, "truncated .npy header", UNREADABLE_MAP)
    header_len = struct.unpack("<H" if size_bytes == 2 else "<I", raw_len)[0]
    if header_len > _NPY_MAX_HEADER:
        raise MapReadError(path, f".npy header of {header_len:,} bytes (more than {_NPY_MAX_HEADER:,}); "
                                 f"not a file written by numpy.save", UNREADABLE_MAP)
    raw = fh.read(header_len)
    if len(raw) < header_len:
        raise MapReadError(path, "truncated .npy header", UNREADABLE_MAP)
    saved = _NPY_SAVED_HEADER.fullmatch(raw.decode("latin1"))
    if saved is not None:  # what ast.literal_eval gives for it
        descr, fortran, shape = saved.groups()
        return {"descr": descr, "fortran_order": fortran == "True",
                "shape": tuple(int(n) for n in shape.split(",") if n.strip())}
    try:
        header = ast.literal_eval(raw.decode(encoding))
    except (UnicodeDecodeError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise MapReadError(path, "corrupt .npy header (not a Python literal)", UNREADABLE_MAP) from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise MapReadError(path, "corrupt .npy header (expected the keys descr, fortran_order, shape)",
                           UNREADABLE_MAP)
    return header


def _npy_dtype(path: Path, descr: object) -> np.dtype:
    """The dtype of an ``.npy`` header's ``descr``, refused unless a plain bool/int/uint/float."""
    if not isinstance(descr, str):
        what = "structured dtype" if isinstance(descr, list) else "corrupt dtype description"
        raise MapReadError(path, f"{what} in the .npy header; expected a real or integer dtype", BAD_MAP)
    if "O" in descr:
        raise MapReadError(path, "object array stored with pickle; pickled arrays are refused "
                                 "(save a numeric array)", BAD_MAP)
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, OverflowError, MemoryError):
        raise MapReadError(path, f"unknown dtype {descr[:40]!r} in the .npy header", UNREADABLE_MAP) from None
    if dtype.hasobject:
        raise MapReadError(path, "object array stored with pickle; pickled arrays are refused "
                                 "(save a numeric array)", BAD_MAP)
    if dtype.names is not None or dtype.shape != () or dtype.kind not in "biuf" or dtype.itemsize > 16:
        raise MapReadError(path, f"unsupported dtype {descr[:40]!r}; expected a real or integer dtype", BAD_MAP)
    return dtype


def _npy_shape(path: Path, shape: object) -> tuple[int, ...]:
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise MapReadError(path, f"corrupt .npy header (shape {str(shape)[:40]})", UNREADABLE_MAP)
    _too_big(path, shape)
    return shape


def _read_npy(path: Path, fh: IO[bytes], mmap: bool, digest=None) -> np.ndarray:
    """Check every field of the header, then read exactly the announced data (no pickle, ever)."""
    header = _npy_header(path, fh)
    dtype = _npy_dtype(path, header["descr"])
    shape = _npy_shape(path, header["shape"])
    fortran = header["fortran_order"]
    if not isinstance(fortran, bool):
        raise MapReadError(path, "corrupt .npy header (fortran_order is not True/False)", UNREADABLE_MAP)
    count = int(np.prod(shape, dtype=np.int64))
    offset = fh.tell()
    available = _file_size(fh) - offset
    if available < count * dtype.itemsize:
        raise MapReadError(path, f"truncated .npy data: the header announces {count * dtype.itemsize:,} bytes, "
                                 f"the file holds {max(available, 0):,}", UNREADABLE_MAP)
    try:
        if mmap:
            arr = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                            order="F" if fortran else "C")
            return np.asarray(arr) if arr.size == 0 else arr
        # read straight into the array's memory (uninitialised: readinto fills it, and a
        # short read is refused below), not into a zero-filled bytearray first
        data = np.empty(count * dtype.itemsize, np.uint8)
        got = fh.readinto(data) if data.size else 0
        if digest is not None and got == data.size:  # header, data, then anything after the data
            fh.seek(0)
            digest.update(fh.read(offset))
            digest.update(data)
            fh.seek(offset + got)
            update_from_file(digest, fh, limit=MAX_MAP_FILE_BYTES)
    except OSError as exc:
        raise MapReadError(path, f"cannot read .npy data ({exc.strerror or exc})", UNREADABLE_MAP) from None
    if got < data.size:
        raise MapReadError(path, "truncated .npy data", UNREADABLE_MAP)
    arr = data.view(dtype)
    return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)


# ---------------------------------------------------------------- .tif / .tiff

def _read_tiff(path: Path, fh: IO[bytes], digest=None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fh, formats=["TIFF"]) as im:
            pages = getattr(im, "n_frames", 1)
            if pages != 1:
                raise MapReadError(path, f"{pages} pages; expected a single-page TIFF", BAD_MAP)
            tags = im.tag_v2
            samples = _first(tags.get(277, 1))
            bits = _first(tags.get(258, 1))
            sample_format = _first(tags.get(339, 1))
            photometric = tags.get(262)
            if samples != 1 or im.mode not in _TIFF_GREY_MODES:
                raise MapReadError(path, f"expected a single-channel (grey) map, got {samples} samples per "
                                         f"pixel (Pillow mode {im.mode})", BAD_MAP)
            _too_big(path, (im.size[1], im.size[0]))
            expected = _TIFF_DTYPES.get((sample_format, bits))
            if expected is None:
                raise MapReadError(path, f"unsupported TIFF sample type (SampleFormat {sample_format}, "
                                         f"{bits} bits); save a single-channel float32 TIFF", BAD_MAP)
            ratio = _TIFF_MAX_RATIO.get(_first(tags.get(259, 1)))
            if ratio is not None and im.size[0] * im.size[1] * bits > 8 * ratio * _file_size(fh):
                raise MapReadError(path, f"the header announces {im.size[0]} x {im.size[1]} pixels, more than "
                                         f"the file holds (truncated or forged)", UNREADABLE_MAP)
            arr = np.array(im)
    except MapReadError:
        raise
    except Image.DecompressionBombError:
        raise MapReadError(path, f"the TIFF header announces more than the limit of {MAX_MAP_PIXELS:,} values "
                                 f"per map; save maps at the image size or smaller", BAD_MAP) from None
    except UnidentifiedImageError:
        _read_tiff_not_tiff(path, fh)
        raise MapReadError(path, "Pillow cannot decode this TIFF (maps must be single-channel float32, "
                                 "or 8/16/32-bit integer, single page)", UNREADABLE_MAP) from None
    except Exception as exc:  # OSError, SyntaxError, struct.error, DecompressionBombError, ... from the decoder
        raise MapReadError(path, f"cannot decode TIFF ({_short(exc)})", UNREADABLE_MAP) from None
    if digest is not None:  # Pillow reads a TIFF out of order: hash it from the start, same open file
        _hash_whole(path, fh, digest)
    return _tiff_as_stored(path, arr, expected, photometric, bits, sample_format)


def _read_tiff_not_tiff(path: Path, fh: IO[bytes]) -> None:
    """Name the format of a file that is not a TIFF (a PNG saved as .tif, ...), if it is an image."""
    fh.seek(0)
    head = fh.read(8)
    if not head:
        raise MapReadError(path, "an empty file", UNREADABLE_MAP)
    if head.startswith(_PNG_MAGIC):
        raise MapReadError(path, "a PNG image, not a TIFF", UNREADABLE_MAP)
    if head.startswith(b"\xff\xd8\xff"):
        raise MapReadError(path, "a JPEG image, not a TIFF", UNREADABLE_MAP)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _tiff_as_stored(path: Path, arr: np.ndarray, expected: np.dtype, photometric: object, bits: int,
                    sample_format: int) -> np.ndarray:
    """Undo Pillow's view of the samples, losslessly, to get the values as stored."""
    if photometric == 0 and bits in (1, 8) and sample_format == 1:
        # WhiteIsZero: Pillow inverts 1- and 8-bit samples; the stored values are wanted.
        arr = ~arr if bits == 1 else np.uint8(255) - arr
    if arr.dtype.itemsize == expected.itemsize and arr.dtype.kind != expected.kind:
        arr = arr.view(expected.newbyteorder(arr.dtype.byteorder))  # int8 read as uint8, uint32 as int32
    if arr.dtype != expected:
        if arr.dtype.kind == expected.kind and arr.dtype.itemsize == expected.itemsize:
            arr = arr.astype(expected)  # byte order only
        elif arr.dtype.kind == "i" and expected.kind == "i" and expected.itemsize < arr.dtype.itemsize:
            arr = arr.astype(expected)  # int16 widened to int32 by Pillow: values fit
        else:
            raise MapReadError(path, f"unexpected TIFF decoding (Pillow gave {arr.dtype}, samples are "
                                     f"{expected}); save a single-channel float32 TIFF", UNREADABLE_MAP)
    return arr


def _first(value: object) -> int:
    if isinstance(value, (tuple, list)):
        value = value[0] if value else 0
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return -1


# ---------------------------------------------------------------- .png

def _read_png(path: Path, fh: IO[bytes], digest=None) -> np.ndarray:
    import cv2

    head = fh.read(33)
    if not head.startswith(_PNG_MAGIC) or len(head) < 26 or head[12:16] != b"IHDR":
        raise MapReadError(path, "not a PNG file" if head else "an empty file", UNREADABLE_MAP)
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    _too_big(path, (height, width))
    if width == 0 or height == 0:
        raise MapReadError(path, f"empty map (PNG header says {width} x {height})", BAD_MAP)
    bit_depth, colour_type = head[24], head[25]
    if colour_type != 0:
        kind = _PNG_COLOUR_TYPES.get(colour_type, f"colour type {colour_type}")
        raise MapReadError(path, f"expected a single-channel (grey) map, got a {kind} PNG", BAD_MAP)
    if bit_depth not in (8, 16):
        raise MapReadError(path, f"{bit_depth}-bit grey PNG; PNG maps must be 8- or 16-bit grey", BAD_MAP)
    raw_bytes = height * (1 + width * (bit_depth // 8))
    if raw_bytes > _DEFLATE_MAX_RATIO * _file_size(fh) + 4096:
        raise MapReadError(path, f"the header announces {width} x {height} pixels, more than a file of "
                                 f"{_file_size(fh):,} bytes can hold (truncated or forged)", UNREADABLE_MAP)
    try:
        raw = head + fh.read()
    except OSError as exc:
        raise MapReadError(path, f"cannot read ({exc.strerror or exc})", UNREADABLE_MAP) from None
    if digest is not None:
        digest.update(raw)
    data = np.frombuffer(raw, dtype=np.uint8)
    try:
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise MapReadError(path, f"cannot decode PNG ({_short(exc)})", UNREADABLE_MAP) from None
    if arr is None:
        raise MapReadError(path, "cannot decode PNG (corrupt or truncated)", UNREADABLE_MAP)
    if arr.ndim != 2:
        # e.g. a grey PNG with a tRNS chunk, which OpenCV expands to grey + alpha
        raise MapReadError(path, f"expected a single-channel (grey) map, decoded shape {arr.shape}", BAD_MAP)
    if arr.shape != (height, width):
        raise MapReadError(path, f"decoded {arr.shape[0]} x {arr.shape[1]}, the header says {height} x {width}",
                           UNREADABLE_MAP)
    expected = np.uint8 if bit_depth == 8 else np.uint16
    if arr.dtype != expected:  # pragma: no cover - OpenCV keeps the bit depth with IMREAD_UNCHANGED
        raise MapReadError(path, f"unexpected PNG decoding ({arr.dtype} for {bit_depth}-bit)", UNREADABLE_MAP)
    return arr
