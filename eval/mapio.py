"""Reading one anomaly map safely (``.npy``, ``.tif``/``.tiff``, ``.png``).

The contract is ``shared/formats.md``: a map is a 2-D array of any real or integer dtype,
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

Size cap: a map of more than :data:`MAX_MAP_PIXELS` values (64 Mi, e.g. 8192 x 8192; the
largest 3CAD image is far smaller) is refused from its header, before it is decoded, so a
hostile file cannot exhaust memory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

__all__ = [
    "MAP_SUFFIXES",
    "MapReadError",
    "BAD_MAP",
    "UNREADABLE_MAP",
    "read_map",
    "check_map",
    "MAX_MAP_PIXELS",
]

log = logging.getLogger(__name__)

MAP_SUFFIXES: tuple[str, ...] = (".npy", ".tif", ".tiff", ".png")

BAD_MAP = "bad_map"
"""Problem kind: the file decodes but is not a valid map (shape, dtype, NaN, pickle)."""
UNREADABLE_MAP = "unreadable_map"
"""Problem kind: the file cannot be read or decoded at all."""

MAX_MAP_PIXELS = 1 << 26
"""Most values (pixels) a map may hold; larger maps are refused before decoding."""

_NPY_MAGIC = b"\x93NUMPY"
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


class MapReadError(ValueError):
    """A map file that cannot be used; ``str()`` names the file and the problem.

    Parameters
    ----------
    path : str or Path
        The map file.
    message : str
        What is wrong with it.
    kind : str
        :data:`BAD_MAP` (decodes, but is not a valid map) or :data:`UNREADABLE_MAP`.
    """

    def __init__(self, path: str | os.PathLike[str], message: str, kind: str = BAD_MAP) -> None:
        self.path = Path(path)
        self.message = message
        self.kind = kind
        super().__init__(f"{self.path}: {message}")


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
        Memory-map ``.npy`` files read-only (``mmap_mode="r"``) instead of reading them.

    Returns
    -------
    ndarray
        2-D, finite. ``.npy``: dtype as stored; ``.tif``: float32 or the stored integer
        dtype; ``.png``: uint8 or uint16.

    Raises
    ------
    MapReadError
        The file cannot be read (``kind == "unreadable_map"``) or is not a valid map
        (``kind == "bad_map"``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy(path, mmap)
    elif suffix in (".tif", ".tiff"):
        arr = _read_tiff(path)
    elif suffix == ".png":
        arr = _read_png(path)
    else:
        raise MapReadError(path, f"unsupported map format {path.suffix!r}; expected {_SUFFIX_TEXT}",
                           UNREADABLE_MAP)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    problem = check_map(arr)
    if problem is not None:
        raise MapReadError(path, problem, BAD_MAP)
    return arr


def _read_head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise MapReadError(path, f"cannot open ({exc.strerror or exc})", UNREADABLE_MAP) from None


def _read_npy(path: Path, mmap: bool) -> np.ndarray:
    head = _read_head(path, len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        if head.startswith(_ZIP_MAGIC):
            raise MapReadError(path, "an .npz archive, not an .npy array; save one map per file "
                                     "with numpy.save", UNREADABLE_MAP)
        if head[:1] == b"\x80":
            raise MapReadError(path, "pickled data; pickled arrays are refused (save a numeric array "
                                     "with numpy.save)", BAD_MAP)
        what = "an empty file" if not head else "not an .npy file (no NumPy header)"
        raise MapReadError(path, what, UNREADABLE_MAP)
    _check_npy_size(path)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise MapReadError(path, "object array stored with pickle; pickled arrays are refused "
                                     "(save a numeric array)", BAD_MAP) from None
        raise MapReadError(path, f"corrupt .npy file ({exc})", UNREADABLE_MAP) from None
    except MemoryError:
        raise
    except Exception as exc:  # OSError, EOFError, numpy header errors
        raise MapReadError(path, f"cannot read .npy file ({exc})", UNREADABLE_MAP) from None
    if not isinstance(arr, np.ndarray):  # pragma: no cover - guarded by the magic check
        raise MapReadError(path, "not a single .npy array", UNREADABLE_MAP)
    return arr


def _too_big(path: Path, shape: tuple[int, ...]) -> None:
    n = 1
    for d in shape:
        n *= int(d)
    if n > MAX_MAP_PIXELS:
        dims = " x ".join(str(int(d)) for d in shape)
        raise MapReadError(path, f"{dims} = {n:,} values, more than the limit of {MAX_MAP_PIXELS:,} per map; "
                                 f"save maps at the image size or smaller", BAD_MAP)


def _check_npy_size(path: Path) -> None:
    """Refuse an .npy whose header announces more than MAX_MAP_PIXELS values."""
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, _ = npy_format.read_array_header_2_0(fh)
            else:
                return  # np.load reports unsupported versions itself
    except (OSError, ValueError, EOFError):
        return  # np.load gives the precise error
    _too_big(path, tuple(shape))


def _read_tiff(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    _read_head(path, 0)  # a clear message for a missing/unreadable file
    try:
        with Image.open(path) as im:
            if im.format != "TIFF":
                raise MapReadError(path, f"a {im.format} image, not a TIFF", UNREADABLE_MAP)
            pages = getattr(im, "n_frames", 1)
            if pages != 1:
                raise MapReadError(path, f"{pages} pages; expected a single-page TIFF", BAD_MAP)
            tags = im.tag_v2
            samples = int(tags.get(277, 1))
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
            arr = np.array(im)
    except MapReadError:
        raise
    except UnidentifiedImageError:
        raise MapReadError(path, "Pillow cannot decode this TIFF (maps must be single-channel float32, "
                                 "or 8/16/32-bit integer, single page)", UNREADABLE_MAP) from None
    except MemoryError:
        raise
    except Exception as exc:  # OSError, SyntaxError, struct.error, ... from the decoder
        raise MapReadError(path, f"cannot decode TIFF ({exc})", UNREADABLE_MAP) from None

    # Undo Pillow's view of the samples, losslessly, to get the values as stored.
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
    return int(value)  # type: ignore[arg-type]


def _read_png(path: Path) -> np.ndarray:
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MapReadError(path, f"cannot open ({exc.strerror or exc})", UNREADABLE_MAP) from None
    head = data[:33].tobytes()
    if not head.startswith(_PNG_MAGIC) or head[12:16] != b"IHDR" or len(head) < 26:
        raise MapReadError(path, "not a PNG file" if data.size else "an empty file", UNREADABLE_MAP)
    _too_big(path, (int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")))
    bit_depth, colour_type = head[24], head[25]
    if colour_type != 0:
        kind = _PNG_COLOUR_TYPES.get(colour_type, f"colour type {colour_type}")
        raise MapReadError(path, f"expected a single-channel (grey) map, got a {kind} PNG", BAD_MAP)
    if bit_depth not in (8, 16):
        raise MapReadError(path, f"{bit_depth}-bit grey PNG; PNG maps must be 8- or 16-bit grey", BAD_MAP)
    try:
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise MapReadError(path, f"cannot decode PNG ({exc})", UNREADABLE_MAP) from None
    if arr is None:
        raise MapReadError(path, "cannot decode PNG (corrupt or truncated)", UNREADABLE_MAP)
    if arr.ndim != 2:
        # e.g. a grey PNG with a tRNS chunk, which OpenCV expands to grey + alpha
        raise MapReadError(path, f"expected a single-channel (grey) map, decoded shape {arr.shape}", BAD_MAP)
    expected = np.uint8 if bit_depth == 8 else np.uint16
    if arr.dtype != expected:  # pragma: no cover - OpenCV keeps the bit depth with IMREAD_UNCHANGED
        raise MapReadError(path, f"unexpected PNG decoding ({arr.dtype} for {bit_depth}-bit)", UNREADABLE_MAP)
    return arr
