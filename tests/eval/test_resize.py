"""The standard protocol's map resize rule (eval.resize)."""

from __future__ import annotations

from contextlib import contextmanager

import cv2
import numpy as np
import pytest

from threecad.eval.resize import FLOAT32_EXACT, resize_bilinear, resize_to_grid, values_on_grid

SIZES = [(256, 256, 984, 377), (256, 256, 549, 738), (7, 5, 31, 17), (3, 3, 3, 7), (1, 4, 5, 9), (4, 1, 9, 3),
         (1, 1, 6, 4), (64, 64, 32, 48), (40, 30, 17, 11), (9, 9, 9, 9), (256, 256, 257, 1000)]


def _reference(a: np.ndarray, h_out: int, w_out: int) -> np.ndarray:
    """The rule of eval.resize written out with Python scalars, one output pixel at a time."""
    h, w = a.shape
    f32 = np.float32

    def coord(i, n_out, n_in):
        f = f32((i + 0.5) * (1.0 / (n_out / n_in)) - 0.5)
        s = int(np.floor(f))
        return s, f32(f - f32(s))

    out = np.empty((h_out, w_out), np.float32)
    for y in range(h_out):
        sy, ay = coord(y, h_out, h)
        rows = (min(max(sy, 0), h - 1), min(max(sy + 1, 0), h - 1))
        for x in range(w_out):
            sx, ax = coord(x, w_out, w)
            if sx < 0:
                sx, ax = 0, f32(0)
            if sx >= w - 1:
                sx, ax = w - 1, f32(0)
            t = [f32(a[r, sx] * f32(f32(1) - ax)) + f32(a[r, min(sx + 1, w - 1)] * ax) for r in rows]
            out[y, x] = f32(t[0] * f32(f32(1) - ay)) + f32(t[1] * ay)
    return out


@pytest.mark.parametrize("h,w,h_out,w_out", [s for s in SIZES if s[2] * s[3] <= 4000])
def test_kernel_is_the_written_rule(h, w, h_out, w_out):
    a = (np.random.default_rng(h * 31 + w).random((h, w)) * 3 - 1).astype(np.float32)
    assert np.array_equal(resize_bilinear(a, (h_out, w_out)), _reference(a, h_out, w_out))


@contextmanager
def opencv_ipp(on: bool):
    """OpenCV's IPP acceleration switched ``on`` or off for the block, then as it was."""
    before = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(on)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(before)


@pytest.fixture
def no_ipp():
    with opencv_ipp(False):
        yield


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h,w,h_out,w_out", SIZES)
def test_equals_opencv_without_ipp(no_ipp, h, w, h_out, w_out, dtype):
    """OpenCV's own bilinear code (its IPP path rounds differently, by CPU: up to 1e-5 seen)."""
    a = (np.random.default_rng(h + w).random((h, w)) * 3 - 1).astype(dtype)
    expected = cv2.resize(a, (w_out, h_out), interpolation=cv2.INTER_LINEAR)
    out = resize_bilinear(a, (h_out, w_out), dtype)
    assert out.dtype == dtype and np.array_equal(out, expected)


def test_float32_close_to_float64_and_within_the_map_range():
    a = np.random.default_rng(0).random((256, 256)).astype(np.float32)
    out = resize_bilinear(a, (1000, 700))
    ref64 = resize_bilinear(a, (1000, 700), np.float64)
    assert out.dtype == np.float32
    assert np.abs(out - ref64).max() < 4 * np.finfo(np.float32).eps
    assert out.min() >= a.min() and out.max() <= a.max()


def test_same_values_whatever_opencv_does():
    """The rule does not depend on OpenCV's IPP switch (OpenCV's own float resize does)."""
    a = np.random.default_rng(2).random((256, 256)).astype(np.float32)
    with opencv_ipp(True):
        on = resize_to_grid(a, (900, 650))
    with opencv_ipp(False):
        off = resize_to_grid(a, (900, 650))
    assert np.array_equal(on, off)


def test_resize_to_grid_picks_the_precision_by_dtype():
    rng = np.random.default_rng(1)
    for dtype in FLOAT32_EXACT:
        a = (rng.random((8, 6)) * 100).astype(dtype)
        out = resize_to_grid(a, (20, 15))
        assert out.dtype == np.float32
        assert np.array_equal(out, resize_bilinear(a.astype(np.float32), (20, 15)))
    for dtype in (np.float64, np.int32, np.uint32, np.int64):
        a = (rng.random((8, 6)) * 1000).astype(dtype)
        out = resize_to_grid(a, (20, 15))
        assert out.dtype == np.float64
        assert np.array_equal(out, resize_bilinear(a.astype(np.float64), (20, 15), np.float64))
    same = rng.random((5, 5)).astype(np.float16)
    assert resize_to_grid(same, (5, 5)) is same  # already on the grid: as submitted


def test_constant_map_stays_constant():
    a = np.full((256, 256), 0.3, np.float32)
    assert np.all(resize_bilinear(a, (777, 555)) == np.float32(0.3))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8, np.float64, np.int32])
@pytest.mark.parametrize("h, w, h_out, w_out", [(16, 16, 97, 131), (256, 256, 853, 885), (7, 5, 7, 5), (1, 9, 4, 30),
                                                (40, 30, 13, 11)])
def test_values_on_grid_are_the_resized_maps_values_bit_for_bit(dtype, h, w, h_out, w_out):
    rng = np.random.default_rng(h * w_out)
    amap = (rng.random((h, w)) * 200 - (0 if np.dtype(dtype).kind == "u" else 50)).astype(dtype)
    whole = resize_to_grid(amap, (h_out, w_out))
    n = h_out * w_out
    flat_index = np.unique(np.concatenate([rng.integers(0, n, min(n, 500)), [0, w_out - 1, n - w_out, n - 1]]))
    got = values_on_grid(amap, (h_out, w_out), flat_index)
    expected = whole.reshape(-1)[flat_index]
    assert got.dtype == expected.dtype
    assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(expected).view(np.uint8))  # the same bits
    assert values_on_grid(amap, (h_out, w_out), np.zeros(0, np.int64)).size == 0
    with pytest.raises(ValueError, match="out of"):
        values_on_grid(amap, (h_out, w_out), np.array([n]))
