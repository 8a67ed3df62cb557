"""Tests of eval.mapio: reading one anomaly map without changing its values."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from threecad.eval.mapio import BAD_MAP, MAP_SUFFIXES, UNREADABLE_MAP, MapReadError, check_map, read_map


def _ramp(dtype, shape=(5, 7)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) % 50).astype(dtype)


def test_suffixes():
    assert MAP_SUFFIXES == (".npy", ".tif", ".tiff", ".png")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int8, np.uint16,
                                   np.int32, np.int64, np.uint64, bool])
def test_npy_values_and_dtype_preserved(tmp_path: Path, dtype):
    arr = _ramp(dtype)
    if np.dtype(dtype).kind == "f":
        arr = arr * np.asarray(-1e-3, dtype) + np.asarray(7, dtype)  # tiny, negative-sloped values
    path = tmp_path / "m.npy"
    np.save(path, arr)
    out = read_map(path)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_npy_extreme_values_not_rescaled(tmp_path: Path):
    arr = np.array([[-1e30, 0.0], [1e-30, 3.4e38]], np.float32)
    np.save(tmp_path / "m.npy", arr)
    np.testing.assert_array_equal(read_map(tmp_path / "m.npy"), arr)


def test_npy_mmap(tmp_path: Path):
    arr = _ramp(np.float32)
    np.save(tmp_path / "m.npy", arr)
    out = read_map(tmp_path / "m.npy", mmap=True)
    assert isinstance(out, np.memmap)
    np.testing.assert_array_equal(out, arr)


def test_npy_big_endian_kept(tmp_path: Path):
    arr = _ramp(">f8")
    np.save(tmp_path / "m.npy", arr)
    out = read_map(tmp_path / "m.npy")
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("shape", [(1, 5, 7), (5, 7, 1)])
def test_singleton_axis_squeezed(tmp_path: Path, shape):
    arr = _ramp(np.float32, shape)
    np.save(tmp_path / "m.npy", arr)
    out = read_map(tmp_path / "m.npy")
    assert out.shape == (5, 7)
    np.testing.assert_array_equal(out, arr.reshape(5, 7))


@pytest.mark.parametrize("shape", [(2, 5, 7), (5, 7, 3), (35,), (), (1, 1, 5, 7)])
def test_wrong_dimensionality(tmp_path: Path, shape):
    np.save(tmp_path / "m.npy", np.zeros(shape, np.float32))
    with pytest.raises(MapReadError) as info:
        read_map(tmp_path / "m.npy")
    assert info.value.kind == BAD_MAP
    assert str(tuple(shape)) in str(info.value)
    assert "m.npy" in str(info.value)


def test_empty_map(tmp_path: Path):
    np.save(tmp_path / "m.npy", np.zeros((0, 7), np.float32))
    with pytest.raises(MapReadError, match="empty map"):
        read_map(tmp_path / "m.npy")


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite(tmp_path: Path, bad, word, dtype):
    arr = np.zeros((4, 4), dtype)
    arr[1, 2] = bad
    np.save(tmp_path / "m.npy", arr)
    with pytest.raises(MapReadError, match=word) as info:
        read_map(tmp_path / "m.npy")
    assert info.value.kind == BAD_MAP
    assert info.value.path == tmp_path / "m.npy"


def test_pickled_object_array_refused(tmp_path: Path):
    arr = np.empty((2, 2), dtype=object)
    arr[:] = 1.0
    np.save(tmp_path / "m.npy", arr, allow_pickle=True)
    with pytest.raises(MapReadError, match="pickled arrays are refused") as info:
        read_map(tmp_path / "m.npy")
    assert info.value.kind == BAD_MAP
    assert isinstance(info.value, ValueError)


def test_plain_pickle_refused(tmp_path: Path):
    (tmp_path / "m.npy").write_bytes(pickle.dumps(np.zeros((2, 2))))
    with pytest.raises(MapReadError, match="pickled arrays are refused"):
        read_map(tmp_path / "m.npy")


@pytest.mark.parametrize("dtype", [np.complex64, "U3", "datetime64[s]", [("a", "f4"), ("b", "f4")]])
def test_bad_dtypes(tmp_path: Path, dtype):
    np.save(tmp_path / "m.npy", np.zeros((3, 3), dtype))
    with pytest.raises(MapReadError, match="dtype") as info:
        read_map(tmp_path / "m.npy")
    assert info.value.kind == BAD_MAP


def test_npz_and_garbage_unreadable(tmp_path: Path):
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 2)))
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npz").read_bytes())
    (tmp_path / "b.npy").write_text("hello")
    (tmp_path / "c.npy").write_bytes(b"")
    np.save(tmp_path / "d.npy", np.zeros((50, 50)))
    (tmp_path / "d.npy").write_bytes((tmp_path / "d.npy").read_bytes()[:300])  # truncated
    for name, text in [("a.npy", "npz"), ("b.npy", "not an .npy"), ("c.npy", "empty"), ("d.npy", "npy")]:
        with pytest.raises(MapReadError, match=text) as info:
            read_map(tmp_path / name)
        assert info.value.kind == UNREADABLE_MAP, name


def test_missing_file(tmp_path: Path):
    for name in ("x.npy", "x.tif", "x.png"):
        with pytest.raises(MapReadError) as info:
            read_map(tmp_path / name)
        assert info.value.kind == UNREADABLE_MAP


def test_unknown_suffix(tmp_path: Path):
    (tmp_path / "m.jpg").write_bytes(b"x")
    with pytest.raises(MapReadError, match="unsupported map format"):
        read_map(tmp_path / "m.jpg")


def test_tiff_float32(tmp_path: Path):
    arr = np.array([[-3.5, 0.0, 1e-7], [1e20, 2.0, -1e-20]], np.float32)
    for name in ("m.tif", "m.TIFF"):
        Image.fromarray(arr).save(tmp_path / name, format="TIFF")
        out = read_map(tmp_path / name)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_tiff_integer(tmp_path: Path, dtype):
    arr = np.array([[0, 1, 2], [np.iinfo(dtype).max, 5, np.iinfo(dtype).min]], dtype)
    Image.fromarray(arr).save(tmp_path / "m.tif")
    out = read_map(tmp_path / "m.tif")
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_tiff_nan_and_rgb(tmp_path: Path):
    arr = np.zeros((3, 3), np.float32)
    arr[0, 0] = np.nan
    Image.fromarray(arr).save(tmp_path / "nan.tif")
    with pytest.raises(MapReadError, match="NaN"):
        read_map(tmp_path / "nan.tif")
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tmp_path / "rgb.tif")
    with pytest.raises(MapReadError, match="single-channel") as info:
        read_map(tmp_path / "rgb.tif")
    assert info.value.kind == BAD_MAP


def test_tiff_multipage_refused(tmp_path: Path):
    pages = [Image.fromarray(np.full((3, 3), v, np.float32)) for v in (1, 2)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(MapReadError, match="2 pages"):
        read_map(tmp_path / "m.tif")


def test_tiff_lossless_views(tmp_path: Path):
    """Samples that Pillow shows differently (signed bytes, uint32, WhiteIsZero) come back as stored."""
    tifffile = pytest.importorskip("tifffile")  # only to write test files; the code uses Pillow
    cases = {
        "i8": np.array([[-128, -1], [0, 127]], np.int8),
        "i16": np.array([[-32768, -1], [0, 32767]], np.int16),
        "u32": np.array([[0, 1], [2**31, 2**32 - 1]], np.uint32),
        "bool": np.array([[True, False], [False, True]]),
    }
    for name, arr in cases.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", arr)
        out = read_map(tmp_path / f"{name}.tif")
        assert out.dtype == arr.dtype, name
        np.testing.assert_array_equal(out, arr, err_msg=name)
    white = np.array([[0, 1], [2, 255]], np.uint8)
    tifffile.imwrite(tmp_path / "white.tif", white, photometric="miniswhite")
    np.testing.assert_array_equal(read_map(tmp_path / "white.tif"), white)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_tiff_corrupt(tmp_path: Path):
    (tmp_path / "m.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(MapReadError) as info:
        read_map(tmp_path / "m.tif")
    assert info.value.kind == UNREADABLE_MAP


def test_png_16bit_full_range_not_rescaled(tmp_path: Path):
    arr = np.array([[0, 1, 2], [1000, 65534, 65535]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "m.png"), arr)
    out = read_map(tmp_path / "m.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, arr)


def test_png_8bit(tmp_path: Path):
    arr = np.array([[0, 1, 2], [3, 254, 255]], np.uint8)
    Image.fromarray(arr).save(tmp_path / "m.png")
    out = read_map(tmp_path / "m.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_png_colour_refused(tmp_path: Path, channels):
    Image.fromarray(np.zeros((3, 3, channels), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(MapReadError, match="expected a single-channel \\(grey\\) map") as info:
        read_map(tmp_path / "m.png")
    assert info.value.kind == BAD_MAP


def test_png_palette_and_1bit_refused(tmp_path: Path):
    Image.fromarray(np.zeros((3, 3), np.uint8)).convert("P").save(tmp_path / "p.png")
    with pytest.raises(MapReadError, match="palette"):
        read_map(tmp_path / "p.png")
    Image.fromarray(np.eye(3, dtype=bool)).save(tmp_path / "b.png")
    with pytest.raises(MapReadError, match="1-bit"):
        read_map(tmp_path / "b.png")


def test_png_not_a_png(tmp_path: Path):
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    (tmp_path / "m.png").write_bytes((tmp_path / "x.npy").read_bytes())
    with pytest.raises(MapReadError, match="not a PNG") as info:
        read_map(tmp_path / "m.png")
    assert info.value.kind == UNREADABLE_MAP
    good = tmp_path / "g.png"
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(good)
    (tmp_path / "t.png").write_bytes(good.read_bytes()[:40])  # truncated
    with pytest.raises(MapReadError) as info:
        read_map(tmp_path / "t.png")
    assert info.value.kind == UNREADABLE_MAP


def test_check_map_in_memory():
    assert check_map(np.zeros((3, 4), np.float32)) is None
    assert check_map(np.zeros((3, 4), bool)) is None
    assert "3-D" in check_map(np.zeros((1, 3, 4)))
    assert "NaN" in check_map(np.array([[np.nan, 1.0]]))
    assert "infinite" in check_map(np.array([[np.inf, 1.0]], np.float16))
    assert "dtype" in check_map(np.zeros((2, 2), complex))
    assert "object" in check_map(np.zeros((2, 2), object))
    assert "empty" in check_map(np.zeros((2, 0)))


def test_error_is_value_error_naming_file(tmp_path: Path):
    err = MapReadError(tmp_path / "a.npy", "broken")
    assert isinstance(err, ValueError)
    assert str(err) == f"{tmp_path / 'a.npy'}: broken"
    assert err.kind == BAD_MAP


# ---------------------------------------------------------------- read_map_digest: one reading

def _digest_cases(tmp_path: Path) -> list[Path]:
    """A map in every format, and .npy files whose bytes go past the data."""
    arr = _ramp(np.float32, (6, 9)) * np.float32(0.37)
    paths = []
    p = tmp_path / "c.npy"
    np.save(p, arr)
    paths.append(p)
    p = tmp_path / "f.npy"
    np.save(p, np.asfortranarray(arr.astype(">f8")))
    paths.append(p)
    p = tmp_path / "trailing.npy"
    np.save(p, arr)
    p.write_bytes(p.read_bytes() + b"bytes after the data")
    paths.append(p)
    p = tmp_path / "v2.npy"
    with open(p, "wb") as fh:
        np.lib.format.write_array(fh, arr, version=(2, 0))
    paths.append(p)
    p = tmp_path / "m.png"
    cv2.imwrite(str(p), (_ramp(np.uint16) * 1000).astype(np.uint16))
    paths.append(p)
    p = tmp_path / "m.tif"
    Image.fromarray(arr).save(p)
    paths.append(p)
    return paths


def test_read_map_digest_is_read_map_and_the_file_sha256(tmp_path: Path):
    import hashlib

    from threecad.eval.mapio import read_map_digest

    for path in _digest_cases(tmp_path):
        arr, digest = read_map_digest(path)
        expected = read_map(path)
        assert arr.dtype == expected.dtype, path.name
        np.testing.assert_array_equal(arr, expected)
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest(), path.name


def test_read_map_digest_refuses_as_read_map(tmp_path: Path):
    from threecad.eval.mapio import read_map_digest

    arr = _ramp(np.float32)
    truncated = tmp_path / "t.npy"
    np.save(truncated, arr)
    truncated.write_bytes(truncated.read_bytes()[:-5])
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[1.0, np.nan]], np.float32))
    cases = [truncated, nan, tmp_path / "missing.npy", tmp_path / "x.jpg"]
    fifo = tmp_path / "fifo.npy"
    if hasattr(__import__("os"), "mkfifo"):
        __import__("os").mkfifo(fifo)
        cases.append(fifo)
    for path in cases:
        with pytest.raises(MapReadError) as plain:
            read_map(path)
        with pytest.raises(MapReadError) as hashed:
            read_map_digest(path)
        assert (hashed.value.kind, str(hashed.value)) == (plain.value.kind, str(plain.value))


def _npy_with_header(text: str, data: bytes = b"") -> bytes:
    """A version 1.0 .npy file with this header text (padded to 64 bytes as numpy pads)."""
    body = text + " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1") + data


@pytest.mark.parametrize("arr", [np.zeros((256, 256), np.float32), np.zeros((5,), np.float16), np.zeros((), np.int64),
                                 np.zeros((3, 4, 5), ">f8"), np.asfortranarray(np.zeros((3, 4), np.uint8)),
                                 np.zeros((0, 7), bool), np.zeros((1, 1), np.float32)])
def test_npy_saved_header_read_as_the_parser_reads_it(tmp_path: Path, arr):
    """The headers numpy.save writes are read without ast.literal_eval, to the same dictionary."""
    import ast
    import io

    from threecad.eval import mapio

    buf = io.BytesIO()
    np.save(buf, arr)
    data = buf.getvalue()
    raw = data[10:10 + int.from_bytes(data[8:10], "little")].decode("latin1")
    assert mapio._NPY_SAVED_HEADER.fullmatch(raw) is not None
    assert mapio._npy_header(tmp_path / "m.npy", io.BytesIO(data)) == ast.literal_eval(raw)


@pytest.mark.parametrize("text,outcome", [
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", (2, 3)),
    ("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", (2, 3)),  # another order: the parser reads it
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3), }", UNREADABLE_MAP),  # no literal
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", UNREADABLE_MAP),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", BAD_MAP),
    ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", None),  # whatever the parser path decides
])
def test_npy_other_headers_go_through_the_parser(tmp_path: Path, text, outcome):
    """Headers numpy.save does not write (or that are broken) are judged as before the fast path."""
    path = tmp_path / "m.npy"
    path.write_bytes(_npy_with_header(text, np.arange(6, dtype=np.float32).tobytes()))
    if outcome is None:
        from threecad.eval import mapio

        with open(path, "rb") as fh:
            raw = fh.read()[10:].split(b"\n")[0].decode("latin1") + "\n"
        assert mapio._NPY_SAVED_HEADER.fullmatch(raw) is None
        return
    if isinstance(outcome, tuple):
        assert read_map(path).shape == outcome
        return
    with pytest.raises(MapReadError) as err:
        read_map(path)
    assert err.value.kind == outcome
