"""How a map of another size is brought onto its grid: one deterministic bilinear kernel.

The rule is OpenCV's bilinear one (``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``:
pixel centres aligned, edge pixels repeated), written out here with every operation, so
that the values are the same on every machine. OpenCV itself does not promise that: with
its IPP acceleration on (the default of the opencv-python wheels) its float resize rounds
differently, by CPU, and differs from its own plain code by up to 1e-5 (measured on a
256x256 map resized to 1000x700, in float32 and in float64 alike). For output pixel
``(y, x)`` of an ``H x W`` grid from an ``h x w`` map ``S``:

* ``fx = float32((x + 0.5) * (1 / (W / w)) - 0.5)`` (the product in float64), ``sx = floor(fx)``,
  ``ax = fx - sx`` (float32); left of the first centre ``sx = 0, ax = 0``; from the last
  centre on ``sx = w - 1, ax = 0`` (the pixel itself). The same for rows, except that a row
  beyond either end blends the edge row with itself, with its weights (as OpenCV does);
* each needed row is first interpolated across, ``T[x] = S[sy, sx] * (1 - ax) + S[sy, sx + 1] * ax``,
  then down, ``out[y, x] = T0[x] * (1 - ay) + T1[x] * ay``: each product and sum rounded to
  the working type (no fused multiply-add), the weights float32 numbers.

This equals OpenCV's own code (IPP off) bit for bit, in float32 and in float64, for any
sizes except an exact halving of both sides, where OpenCV switches to area averaging; the
tests check both that and a one-pixel-at-a-time transcription of the rule.

The ``standard`` protocol (:func:`resize_to_grid`) works in float32 for maps of float32 or a
narrower type (float16, 8- and 16-bit integers, bool: all exact in float32), in float64 for
any other. The float32 resize costs about a quarter of the float64 one, and its float32
values let the counting engine use 32-bit keys (:mod:`eval.engine`); they differ from the
float64 ones by a few float32 units in the last place of the map's largest values.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["resize_to_grid", "resize_bilinear", "values_on_grid", "FLOAT32_EXACT"]

FLOAT32_EXACT = frozenset(np.dtype(t) for t in (np.float32, np.float16, np.bool_, np.uint8, np.int8,
                                                 np.uint16, np.int16))
"""Map dtypes resized in float32 (every value of theirs is a float32 exactly)."""


@njit(nogil=True, cache=True)
def _axis(n_out, n_in, clamp_edges):  # pragma: no cover - compiled
    """Per output position: the first source index, the second one (clamped into the map) and
    the second one's float32 weight. ``clamp_edges`` (columns): outside the first and the last
    centre the pixel itself (weight 0); otherwise (rows) the indices are only clamped."""
    scale = 1.0 / (n_out / n_in)
    first = np.empty(n_out, np.int64)
    second = np.empty(n_out, np.int64)
    weight = np.empty(n_out, np.float32)
    for i in range(n_out):
        f = np.float32((i + 0.5) * scale - 0.5)
        s = np.int64(np.floor(f))
        a = np.float32(f - np.float32(s))
        if clamp_edges and s < 0:
            s, a = 0, np.float32(0.0)
        if clamp_edges and s >= n_in - 1:
            s, a = n_in - 1, np.float32(0.0)
        first[i] = min(max(s, 0), n_in - 1)
        second[i] = min(max(s + 1, 0), n_in - 1)
        weight[i] = a
    return first, second, weight


@njit(nogil=True, cache=True)
def _bilinear(src, sx, nx, ax, r0, r1, ay, out):  # pragma: no cover - compiled
    """The rule, in the arithmetic of ``src``'s dtype (float32 or float64; the weights are
    float32 numbers either way, as OpenCV's)."""
    h_out, w_out = out.shape
    one = np.float32(1.0)
    bx = np.empty(w_out, np.float32)
    for x in range(w_out):
        bx[x] = one - ax[x]
    t0 = np.empty(w_out, src.dtype)
    t1 = np.empty(w_out, src.dtype)
    have0 = -1
    have1 = -1
    for y in range(h_out):
        a = r0[y]
        b = r1[y]
        if a != have0:  # rows interpolated across once, reused by every output row that needs them
            if a == have1:
                t0, t1 = t1, t0
                have0, have1 = have1, have0
            else:
                row = src[a]
                for x in range(w_out):
                    t0[x] = row[sx[x]] * bx[x] + row[nx[x]] * ax[x]
                have0 = a
        if b != have1:
            row = src[b]
            for x in range(w_out):
                t1[x] = row[sx[x]] * bx[x] + row[nx[x]] * ax[x]
            have1 = b
        wy = ay[y]
        wy0 = one - wy  # float32, as the weights across
        o = out[y]
        for x in range(w_out):
            o[x] = t0[x] * wy0 + t1[x] * wy


@njit(nogil=True, cache=True)
def _bilinear_at(src, sx, nx, ax, r0, r1, ay, w_out, flat_index, out):  # pragma: no cover - compiled
    """:func:`_bilinear`'s value of each output pixel of ``flat_index`` (row-major in a grid
    ``w_out`` wide), by the same operations in the same order: the same numbers."""
    one = np.float32(1.0)
    for i in range(flat_index.size):
        y = flat_index[i] // w_out
        x = flat_index[i] - y * w_out
        bx = one - ax[x]
        row = src[r0[y]]
        t0 = row[sx[x]] * bx + row[nx[x]] * ax[x]
        row = src[r1[y]]
        t1 = row[sx[x]] * bx + row[nx[x]] * ax[x]
        wy = ay[y]
        out[i] = t0 * (one - wy) + t1 * wy


def _source_and_axes(amap: np.ndarray, shape: tuple[int, int], dtype: type):
    """``amap`` as a contiguous ``dtype`` array, and the rule's tables for a grid ``shape``:
    columns (first, second, weight), then rows (first, second, weight)."""
    src = np.ascontiguousarray(amap, dtype=dtype)
    if src.ndim != 2 or src.size == 0:
        raise ValueError(f"a map to resize must be 2-D and not empty, got shape {src.shape}")
    h_out, w_out = int(shape[0]), int(shape[1])
    return src, _axis(w_out, src.shape[1], True), _axis(h_out, src.shape[0], False)


def _grid_dtype(amap: np.ndarray) -> type:
    """The arithmetic of the ``standard`` rule for ``amap``: float32 for a type in
    :data:`FLOAT32_EXACT`, float64 for any other."""
    return np.float32 if amap.dtype in FLOAT32_EXACT else np.float64


def resize_bilinear(amap: np.ndarray, shape: tuple[int, int], dtype: type = np.float32) -> np.ndarray:
    """``amap`` resized to ``shape`` by the rule above, in ``dtype`` arithmetic.

    Parameters
    ----------
    amap : ndarray of shape (h, w)
        A real map (converted to ``dtype``).
    shape : (H, W)
        The grid.
    dtype : np.float32 or np.float64
        The arithmetic and the result's type.

    Returns
    -------
    ndarray of shape (H, W), ``dtype``
    """
    src, (sx, nx, ax), (r0, r1, ay) = _source_and_axes(amap, shape, dtype)
    out = np.empty((int(shape[0]), int(shape[1])), src.dtype)
    _bilinear(src, sx, nx, ax, r0, r1, ay, out)
    return out


def resize_to_grid(amap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``amap`` brought onto an image's grid ``shape`` (the ``standard`` rule): as is when its
    size is the grid's; else :func:`resize_bilinear` in float32 for a type in
    :data:`FLOAT32_EXACT`, in float64 for any other."""
    if amap.shape == tuple(shape):
        return amap
    return resize_bilinear(amap, shape, _grid_dtype(amap))


def values_on_grid(amap: np.ndarray, shape: tuple[int, int], flat_index: np.ndarray) -> np.ndarray:
    """The values :func:`resize_to_grid` gives at ``flat_index`` (row-major on the grid), bit
    for bit, computing only those pixels (e.g. an image's anomalous ones: pass 1 then needs
    no whole resized map).

    Parameters
    ----------
    amap : ndarray of shape (h, w)
    shape : (H, W)
        The grid.
    flat_index : ndarray of shape (p,), int
        Flat indices into the grid.

    Returns
    -------
    ndarray of shape (p,)
        In the type :func:`resize_to_grid` gives (``amap``'s own when its size is the grid's).
    """
    flat_index = np.asarray(flat_index, np.int64).reshape(-1)
    h_out, w_out = int(shape[0]), int(shape[1])
    if flat_index.size and not 0 <= int(flat_index.min()) <= int(flat_index.max()) < h_out * w_out:
        raise ValueError(f"flat indices out of a {h_out}x{w_out} grid")
    if amap.shape == (h_out, w_out):
        return amap.reshape(-1)[flat_index]
    src, (sx, nx, ax), (r0, r1, ay) = _source_and_axes(amap, shape, _grid_dtype(amap))
    out = np.empty(flat_index.size, src.dtype)
    _bilinear_at(src, sx, nx, ax, r0, r1, ay, w_out, flat_index, out)
    return out
