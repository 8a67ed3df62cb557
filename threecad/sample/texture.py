"""Texture and geometry primitives for the synthetic parts: noise, brushing, lighting, SDFs.

Everything works on float32 arrays with values around [0, 1] and takes an explicit
``numpy.random.Generator``; nothing here touches a global random state.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "axes",
    "smooth_noise",
    "brushed",
    "grain",
    "lighting",
    "sd_round_rect",
    "sd_circle",
    "coverage",
    "bevel",
    "points",
]

F32 = np.float32


def axes(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates as broadcastable ``(h, 1)`` and ``(1, w)`` float32 arrays."""
    return np.arange(h, dtype=F32)[:, None], np.arange(w, dtype=F32)[None, :]


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float,
                 octaves: int = 3, persistence: float = 0.5) -> np.ndarray:
    """Fractal value noise of about unit amplitude; ``cell`` is the coarsest feature size (px)."""
    out = np.zeros((h, w), F32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh = max(2, int(np.ceil(h / cell)) + 1)
        gw = max(2, int(np.ceil(w / cell)) + 1)
        small = rng.standard_normal((gh, gw), dtype=F32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
        cell = max(cell / 2.0, 2.0)
    return out / F32(total)


def brushed(rng: np.random.Generator, h: int, w: int, streak: int, amp: float,
            vertical: bool = False) -> np.ndarray:
    """Brushed-metal hairlines: noise stretched about ``streak`` px along one axis."""
    if vertical:
        return np.ascontiguousarray(brushed(rng, w, h, streak, amp).T)
    long_ = rng.standard_normal((h, max(2, w // streak)), dtype=F32)
    short = rng.standard_normal((h, max(2, w // max(2, streak // 6))), dtype=F32)
    out = cv2.resize(long_, (w, h), interpolation=cv2.INTER_LINEAR)
    out += 0.5 * cv2.resize(short, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.GaussianBlur(out, (0, 0), sigmaX=1.5, sigmaY=0.5)
    return out * F32(amp)


def grain(rng: np.random.Generator, h: int, w: int, amp: float, sigma: float = 0.7) -> np.ndarray:
    """Fine isotropic grain (bead-blasted or sensor noise), slightly blurred, spread ``amp``."""
    g = rng.random((h, w), dtype=F32)
    g -= F32(0.5)
    g *= F32(3.4641)  # unit variance
    if sigma > 0:
        g = cv2.GaussianBlur(g, (0, 0), sigma)
        g /= F32(max(0.25, 0.6 / sigma))  # keep roughly unit spread after blurring
    return g * F32(amp)


def lighting(rng: np.random.Generator, h: int, w: int,
             strength: float = 0.18) -> tuple[np.ndarray, tuple[float, float]]:
    """A soft lighting field around 1 and the in-plane direction ``(dy, dx)`` towards the light.

    The field is a linear gradient towards the light plus a broad separable hotspot, the way a
    ring or bar light falls on a flat part.
    """
    ang = rng.uniform(0, 2 * np.pi)
    dy, dx = float(np.sin(ang)), float(np.cos(ang))
    yy, xx = axes(h, w)
    s = max(h, w)
    cy, cx = h * rng.uniform(0.25, 0.75), w * rng.uniform(0.25, 0.75)
    sy, sx = h * rng.uniform(0.35, 0.7), w * rng.uniform(0.35, 0.7)
    k = F32(strength)
    # 1 + k * (0.8 * plane + 0.9 * (hot - 0.5)), with plane and hot separable
    col = 1 - 0.45 * k + 0.8 * k * (yy - h / 2) * F32(dy / s)
    row = 0.8 * k * (xx - w / 2) * F32(dx / s)
    hot_y = 0.9 * k * np.exp(-((yy - cy) / sy) ** 2 / 2)
    hot_x = np.exp(-((xx - cx) / sx) ** 2 / 2)
    field = hot_y * hot_x
    field += col
    field += row
    return field.astype(F32, copy=False), (dy, dx)


def sd_round_rect(h: int, w: int, cy: float, cx: float, half_h: float, half_w: float,
                  radius: float, reach: float | None = None) -> np.ndarray:
    """Signed distance (px, negative inside) to a rounded rectangle centred at ``(cy, cx)``.

    ``reach`` limits the computation as for :func:`sd_circle`.
    """
    if reach is not None:
        out = np.full((h, w), F32(reach), F32)
        y0, y1 = max(0, int(cy - half_h - reach)), min(h, int(cy + half_h + reach) + 1)
        x0, x1 = max(0, int(cx - half_w - reach)), min(w, int(cx + half_w + reach) + 1)
        if y1 > y0 and x1 > x0:
            local = sd_round_rect(y1 - y0, x1 - x0, cy - y0, cx - x0, half_h, half_w, radius)
            out[y0:y1, x0:x1] = np.minimum(local, F32(reach))
        return out
    yy, xx = axes(h, w)
    r = min(radius, half_h, half_w)
    qy = np.abs(yy - cy) - (half_h - r)
    qx = np.abs(xx - cx) - (half_w - r)
    outside = np.sqrt(np.maximum(qy, 0) ** 2 + np.maximum(qx, 0) ** 2)
    inside = np.minimum(np.maximum(qy, qx), 0)
    return (outside + inside - r).astype(F32)


def sd_circle(h: int, w: int, cy: float, cx: float, radius: float,
              reach: float | None = None) -> np.ndarray:
    """Signed distance (px, negative inside) to a circle.

    With ``reach``, distances are only computed within ``reach`` px of the circle's box and
    are ``reach`` further out (cheap for small holes; keep ``reach`` above any bevel width).
    """
    if reach is None:
        yy, xx = axes(h, w)
        return (np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - F32(radius)).astype(F32)
    out = np.full((h, w), F32(reach), F32)
    y0, y1 = max(0, int(cy - radius - reach)), min(h, int(cy + radius + reach) + 1)
    x0, x1 = max(0, int(cx - radius - reach)), min(w, int(cx + radius + reach) + 1)
    if y1 > y0 and x1 > x0:
        local = sd_circle(y1 - y0, x1 - x0, cy - y0, cx - x0, radius)
        out[y0:y1, x0:x1] = np.minimum(local, F32(reach))
    return out


def coverage(sdf: np.ndarray) -> np.ndarray:
    """Antialiased inside-coverage (1 inside, 0 outside, a one-pixel ramp) of a signed distance."""
    return np.clip(0.5 - sdf, 0.0, 1.0).astype(F32)


def bevel(sdf: np.ndarray, width: float, light: tuple[float, float],
          strength: float) -> np.ndarray:
    """Shading of a chamfer ``width`` px wide just inside the edge of ``sdf``.

    Returns an additive term, zero outside the chamfer: the side facing the light is bright,
    the far side dark, with a thin specular line along the middle of the cut.
    """
    out = np.zeros(sdf.shape, F32)
    flat = sdf.ravel()
    idx = np.flatnonzero((flat < 0) & (flat > -width))
    if idx.size == 0:
        return out
    gy = cv2.Sobel(sdf, cv2.CV_32F, 0, 1, ksize=1, scale=0.5).ravel()[idx]
    gx = cv2.Sobel(sdf, cv2.CV_32F, 1, 0, ksize=1, scale=0.5).ravel()[idx]
    facing = gy * F32(light[0]) + gx * F32(light[1])  # outward normal . light
    t = -flat[idx] / F32(width)
    band = np.sqrt(np.clip(1.0 - np.abs(2.0 * t - 1.0), 0.0, 1.0))
    spec = np.exp(-((t - 0.5) * 6.0) ** 2)
    out.ravel()[idx] = band * F32(strength) * (0.6 * facing + 0.25 + 0.35 * spec)
    return out


def points(mask: np.ndarray, rng: np.random.Generator, limit: int = 4000) -> np.ndarray:
    """Up to ``limit`` random ``(y, x)`` points where ``mask`` is true, as ``(n, 2)`` ints."""
    flat = np.flatnonzero(mask)
    if flat.size > limit:
        flat = flat[rng.integers(0, flat.size, limit)]
    ys, xs = np.divmod(flat, mask.shape[1])
    return np.stack([ys, xs], axis=1).astype(np.int64)
