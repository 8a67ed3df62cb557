"""Property-based tests of everything a submission hands us (issue 14, lasting defences).

Any byte string as a map (``.npy``, ``.tif``, ``.png``), as ``scores.csv`` or as
``submission.json``, any tree of files, folders, FIFOs and links as a submission, and any
zip as a zipped submission either loads or raises the project's own error
(:class:`threecad.errors.ThreecadError`), never anything else; memory stays bounded
(``tracemalloc`` peak) and a hang fails the test (pytest-timeout). Examples are
derandomised, so a failure reproduces.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.eval.test_hostile_inputs import npy_bytes, png_bytes, tiff_bytes
from tests.eval.test_submission import CS, IS, manifest, write_submission  # noqa: F401
from threecad.errors import ThreecadError
from threecad.eval import format as fmt
from threecad.eval.archive import submission_folder
from threecad.eval.mapio import read_map
from threecad.eval.submission import load_submission

pytestmark = pytest.mark.timeout(900)

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
MEMORY_BOUND = 64 << 20  # bytes traced while reading inputs of a few KiB


@contextmanager
def bounded_memory():
    """Fail when the block allocates (as traced) more than MEMORY_BOUND at its peak."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"peak {peak:,} bytes"


def loads_or_own_error(fn, *args, **kwargs):
    """Call ``fn``; an error other than ThreecadError fails the test (it propagates)."""
    try:
        return fn(*args, **kwargs)
    except ThreecadError as exc:
        assert str(exc)  # a message naming the problem
        return None


# ---------------------------------------------------------------- seeds and mutations

def _tiff(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    import cv2

    ok, enc = cv2.imencode(".png", arr)
    assert ok
    return enc.tobytes()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


_ARR = np.arange(48, dtype=np.float32).reshape(6, 8)
SEEDS = {
    ".npy": [_npy(_ARR), _npy(_ARR.astype(np.uint8)), _npy(np.asfortranarray(_ARR.astype(">f8"))),
             npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (6, 8)}, (3, 0), _ARR.tobytes()),
             npy_bytes({"descr": "<i2", "fortran_order": False, "shape": (2, 2)}, (2, 0), b"\1\0" * 4)],
    ".tif": [_tiff(_ARR), _tiff(_ARR.astype(np.uint16)), tiff_bytes(4, 4, data=b"\0" * 64)],
    ".png": [_png(_ARR.astype(np.uint8)), _png(_ARR.astype(np.uint16)), png_bytes(4, 4)],
}


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A valid file with bytes flipped, a slice cut out, duplicated or truncated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "dup", "truncate", "big"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "dup":
            data[i:i] = data[i:i + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[i:]
        else:  # a huge number where a size or offset might be
            data[i:i + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 65536])))
    return bytes(data)


def any_file(suffix: str):
    return st.one_of(st.binary(max_size=512), mutated(SEEDS[suffix]))


# ---------------------------------------------------------------- maps

@pytest.mark.parametrize("suffix", [".npy", ".tif", ".png"])
def test_fuzz_map_readers_load_or_raise_their_own_error(suffix):
    @FUZZ
    @given(data=any_file(suffix))
    def check(data):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"m{suffix}"
            path.write_bytes(data)
            with bounded_memory():
                arr = loads_or_own_error(read_map, path)
            if arr is not None:
                assert arr.ndim == 2 and arr.size and (arr.dtype.kind != "f" or np.isfinite(arr).all())

    check()


_DESCRS = st.one_of(st.sampled_from(["<f4", ">f8", "|b1", "<i8", "|u1", "<f2", "<c8", "|S4", "|V8", "|O", "<U3",
                                     "(2,)<f4", "<M8[s]", "f4,f4", "", "<f16", "|S999999999999"]),
                    st.text(max_size=12), st.lists(st.tuples(st.text(max_size=3), st.sampled_from(["<f4", "|V4"])),
                                                   max_size=3))
_SHAPES = st.one_of(st.tuples(), st.lists(st.integers(-3, 1 << 40), max_size=4).map(tuple),
                    st.lists(st.integers(0, 9), max_size=3), st.integers(), st.none())


def test_fuzz_npy_headers_of_every_version():
    @FUZZ
    @given(descr=_DESCRS, shape=_SHAPES, fortran=st.one_of(st.booleans(), st.integers(0, 2)),
           version=st.sampled_from([(1, 0), (2, 0), (3, 0), (4, 0), (0, 0)]), data=st.binary(max_size=256))
    def check(descr, shape, fortran, version, data):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.npy"
            path.write_bytes(npy_bytes({"descr": descr, "fortran_order": fortran, "shape": shape}, version, data))
            with bounded_memory():
                loads_or_own_error(read_map, path)

    check()


# ---------------------------------------------------------------- scores.csv and submission.json

_KEYS = st.sampled_from([f"{CS}/test/good/000000", f"{CS}/test/good/000001", f"{CS}/test/broken_wire/000002",
                         f"{CS}/test/broken_wire/000003", f"{IS}/test/good/000000", f"{IS}/test/huahen/000001",
                         f"{IS}/test/rust/000002", "x/test/y/z", "", "image", "../../etc/passwd"])
_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8),
                    st.sampled_from(["1e309", "-0", "0x10", "nan", "1_000"]))
_CSV = st.one_of(st.binary(max_size=1024),
                 st.lists(st.tuples(_KEYS, _VALUES), max_size=12).map(
                     lambda rows: ("image,score\n" + "".join(f"{k},{v}\n" for k, v in rows)).encode()),
                 st.lists(st.lists(st.text(max_size=6), max_size=4), max_size=6).map(
                     lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")))

_JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                      max_size=3),
                            max_leaves=12)
_META = st.one_of(st.binary(max_size=512),
                  st.dictionaries(st.sampled_from(["format_version", "method", "team", "x"]), _JSON_VALUES,
                                  max_size=4).map(lambda d: json.dumps(d).encode()),
                  st.integers(0, 3000).map(lambda n: (b'{"method": ' + b"[" * n + b"]" * n + b"}")))


@pytest.mark.parametrize("name, strategy", [(fmt.SCORES_FILE, _CSV), (fmt.META_FILE, _META)])
def test_fuzz_scores_csv_and_submission_json(tmp_path, manifest, name, strategy):
    preds = write_submission(tmp_path / "sub", manifest)

    @FUZZ
    @given(data=strategy)
    def check(data):
        (preds / name).write_bytes(data)
        with bounded_memory():
            sub = loads_or_own_error(load_submission, preds, manifest)
        if sub is not None and name == fmt.SCORES_FILE:
            assert all(np.isfinite(v) for v in sub.scores.values())

    check()


# ---------------------------------------------------------------- trees

_PARTS = st.sampled_from([CS, IS, "ACC", "test", "good", "broken_wire", "huahen", "000000", "000001.npy",
                          "000002.png", "000000.tif", "x.txt", fmt.SCORES_FILE, fmt.META_FILE, "results", ".hidden"])
_ENTRY = st.tuples(st.lists(_PARTS, min_size=1, max_size=4),
                   st.sampled_from(["file", "dir", "fifo", "link_in", "link_out", "loop", "dangling"]),
                   st.binary(max_size=64))


def _make(root: Path, parts: list[str], kind: str, data: bytes, outside: Path) -> None:
    path = root.joinpath(*parts)
    if os.path.lexists(path):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # a file or link where a folder would go
        return
    if kind == "file":
        path.write_bytes(data)
    elif kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link_in":
        os.symlink(os.path.relpath(root / parts[0], path.parent), path)
    elif kind == "link_out":
        os.symlink(outside, path)
    elif kind == "loop":
        os.symlink(path.name, path)
    else:
        os.symlink("does-not-exist", path)


def test_fuzz_submission_trees(tmp_path, manifest):
    outside = tmp_path / "outside.npy"
    outside.write_bytes(b"SECRET")
    base = write_submission(tmp_path / "base", manifest)

    @FUZZ
    @given(entries=st.lists(_ENTRY, max_size=8), fresh=st.booleans())
    def check(entries, fresh):
        with tempfile.TemporaryDirectory(dir=tmp_path) as d:
            root = Path(d) / "sub"
            if fresh:
                root.mkdir()
            else:
                shutil.copytree(base, root)
            for parts, kind, data in entries:
                _make(root, parts, kind, data, outside)
            for check_contents in (False, True):
                with bounded_memory():
                    loads_or_own_error(load_submission, root, manifest, check_contents=check_contents, workers=1)

    check()


# ---------------------------------------------------------------- zipped submissions

_NAMES = st.one_of(st.sampled_from(["../evil.npy", "/abs.npy", "C:\\win.npy", "a/../../b.npy", "a\\..\\..\\b",
                                    f"{CS}/test/good/000000.npy", f"{CS}/test/good/000000.npy", "d/", "x\x00y",
                                    "__MACOSX/._x", "inner.zip", "sub/" + CS + "/test/good/000001.npy"]),
                   st.text(min_size=1, max_size=20))


@st.composite
def zips(draw) -> bytes:
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point
        with zipfile.ZipFile(buf, "w", draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as zf:
            for name, data, mode in draw(st.lists(st.tuples(_NAMES, st.binary(max_size=64),
                                                            st.sampled_from([0o100644, 0o120777, 0o010644,
                                                                             0o020644, 0o040755])), max_size=6)):
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = mode << 16
                zf.writestr(info, data)
    data = buf.getvalue()
    if draw(st.booleans()):
        data = draw(mutated([data])) if data else data
    return data


def test_fuzz_archive_inspector_and_zipped_submissions(tmp_path, manifest):
    @FUZZ
    @given(data=zips())
    def check(data):
        with tempfile.TemporaryDirectory(dir=tmp_path) as d:
            d = Path(d)
            sub = d / "sub.zip"
            sub.write_bytes(data)
            work = d / "work"
            work.mkdir()
            try:
                with bounded_memory(), submission_folder(sub, tmp_dir=work) as folder:
                    real = os.path.realpath(work)
                    for p in Path(folder).rglob("*"):  # nothing outside the extraction
                        assert os.path.realpath(p).startswith(real + os.sep)
                    loads_or_own_error(load_submission, folder, manifest, check_contents=True, workers=1)
            except ThreecadError:
                pass
            assert not [p for p in work.iterdir() if "threecad-submission" in p.name]
            assert not (d / "evil.npy").exists() and not (tmp_path / "evil.npy").exists()

    check()
