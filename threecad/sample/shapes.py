"""Defect region shapes: blobs, strokes, streaked patches, arcs and wire strands.

A shape generator returns a :class:`Shape`: float32 layers on a local canvas (``alpha`` decides
the region; others, such as ``height`` or ``core``, guide the painter) and the canvas's origin in
the image. :func:`finalize` turns it into a :class:`Region` that is exactly one 8-connected
component with a tight bounding box, every layer zero outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SIZE_CLASSES",
    "SIZE_AREAS",
    "Shape",
    "Region",
    "finalize",
    "blob",
    "stroke",
    "streaked",
    "arc",
    "strands",
]

F32 = np.float32

SIZE_CLASSES: tuple[str, ...] = ("small", "medium", "large")
"""Region size classes, matching the evaluation's (< 32x32 px, up to 96x96 px, larger)."""

SIZE_AREAS: dict[str, tuple[float, float]] = {
    "small": (60.0, 750.0),
    "medium": (1500.0, 7000.0),
    "large": (11000.0, 26000.0),
}
"""Target region area (px) range per size class."""

_THRESHOLD = 0.06  # alpha above this belongs to the region


@dataclass
class Shape:
    """Unclipped layers of one region on a local canvas whose top-left is ``(y0, x0)``."""

    layers: dict[str, np.ndarray]
    y0: int
    x0: int


@dataclass
class Region:
    """One finished region: a single 8-connected component, tightly boxed.

    Attributes
    ----------
    y0, x0 : int
        Top-left corner of the box in the image.
    mask : numpy.ndarray
        bool, the region's pixels within the box.
    layers : dict
        float32 layers cropped to the box, zero outside ``mask`` (``alpha`` always present).
    """

    y0: int
    x0: int
    mask: np.ndarray
    layers: dict[str, np.ndarray]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(y0, x0, y1, x1)`` with exclusive ends."""
        return self.y0, self.x0, self.y0 + self.mask.shape[0], self.x0 + self.mask.shape[1]

    @property
    def alpha(self) -> np.ndarray:
        """The region's blending weight, zero outside the mask."""
        return self.layers["alpha"]

    @property
    def area(self) -> int:
        """Number of pixels of the region."""
        return int(self.mask.sum())


def finalize(shape: Shape, image_hw: tuple[int, int], within: np.ndarray | None = None,
             ) -> Region | None:
    """Clip a shape to the image (and to ``within``), keep its largest 8-connected piece.

    Returns ``None`` when nothing of the shape is left.
    """
    h, w = image_hw
    alpha = shape.layers["alpha"]
    ph, pw = alpha.shape
    ya, xa = max(0, shape.y0), max(0, shape.x0)
    yb, xb = min(h, shape.y0 + ph), min(w, shape.x0 + pw)
    if yb - ya < 1 or xb - xa < 1:
        return None
    sl = (slice(ya - shape.y0, yb - shape.y0), slice(xa - shape.x0, xb - shape.x0))
    mask = alpha[sl] > _THRESHOLD
    if within is not None:
        mask &= within[ya:yb, xa:xb]
    if not mask.any():
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    keep = labels[y:y + bh, x:x + bw] == best
    layers = {}
    for name, layer in shape.layers.items():
        cropped = layer[sl][y:y + bh, x:x + bw]
        layers[name] = np.where(keep, cropped, 0).astype(F32)
    return Region(ya + y, xa + x, keep, layers)


def _canvas(centre: tuple[float, float], half: float,
            ) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    """A square local canvas around ``centre``: origin, size and local centre coordinates."""
    half = int(np.ceil(half)) + 3
    y0, x0 = int(round(centre[0])) - half, int(round(centre[1])) - half
    size = 2 * half + 1
    yy = np.arange(size, dtype=F32)[:, None] - F32(centre[0] - y0)
    xx = np.arange(size, dtype=F32)[None, :] - F32(centre[1] - x0)
    return y0, x0, size, yy, xx


def _noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Smooth noise of unit amplitude on a ``size`` x ``size`` canvas."""
    g = max(2, int(np.ceil(size / max(cell, 2.0))) + 1)
    small = rng.standard_normal((g, g), dtype=F32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def blob(rng: np.random.Generator, centre: tuple[float, float], area: float, *,
         aspect: tuple[float, float] = (1.0, 2.2), angle: float | None = None,
         wobble: float = 0.12, ragged: float = 0.0, soft: float = 0.15) -> Shape:
    """An irregular ellipse of about ``area`` px.

    Layers: ``alpha`` (coverage with a soft edge of relative width ``soft``) and ``height``
    (a smooth dome, 1 in the middle, 0 at the rim) for shading dents and bumps. ``ragged`` adds
    noisy, stain-like borders.
    """
    e = rng.uniform(*aspect)
    a = np.sqrt(area * e / np.pi)
    b = area / (np.pi * a)
    ang = rng.uniform(0, np.pi) if angle is None else angle
    y0, x0, size, yy, xx = _canvas(centre, a * (1.25 + wobble + ragged))
    c, s = F32(np.cos(ang)), F32(np.sin(ang))
    u, v = (xx * c + yy * s) / F32(a), (-xx * s + yy * c) / F32(b)
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    edge = np.ones_like(theta)
    for k in range(2, 6):
        amp = F32(rng.uniform(-wobble, wobble) / (k - 1))
        edge += amp * np.cos(k * theta + F32(rng.uniform(0, 6.3)))
    t = 1.0 - rho / edge
    if ragged:
        t = t + F32(ragged) * _noise(rng, size, max(3.0, b * 0.6))
    alpha = np.clip(t / F32(soft), 0, 1)
    height = np.clip(t, 0, 1) ** 0.8
    height = height * np.clip(t / F32(0.25), 0, 1)  # flatten the rim so shading stays inside
    return Shape({"alpha": alpha.astype(F32), "height": height.astype(F32)}, y0, x0)


def _path(rng: np.random.Generator, centre: tuple[float, float], length: float,
          bend: float, jitter: float = 0.0, angle: float | None = None) -> np.ndarray:
    """Points (x, y) of a smooth random curve of about ``length`` px centred on ``centre``."""
    n = max(4, int(length / 3))
    step = length / n
    ang = rng.uniform(0, 2 * np.pi) if angle is None else angle
    turn = rng.normal(0, bend, n).cumsum() / n * 4 + rng.uniform(-bend, bend)
    heading = ang + np.cumsum(turn) / n * 2
    if jitter:
        heading = heading + rng.normal(0, jitter, n)
    pts = np.zeros((n + 1, 2))
    pts[1:, 0] = np.cumsum(np.cos(heading) * step)
    pts[1:, 1] = np.cumsum(np.sin(heading) * step)
    pts -= pts.mean(axis=0)
    pts[:, 0] += centre[1]
    pts[:, 1] += centre[0]
    return pts


def _draw(pts: np.ndarray, widths: np.ndarray, pad: int) -> tuple[np.ndarray, int, int]:
    """Rasterise a polyline with per-segment widths; returns a float canvas and its origin."""
    x0 = int(np.floor(pts[:, 0].min())) - pad
    y0 = int(np.floor(pts[:, 1].min())) - pad
    w = int(np.ceil(pts[:, 0].max())) + pad - x0 + 1
    h = int(np.ceil(pts[:, 1].max())) + pad - y0 + 1
    canvas = np.zeros((h, w), np.uint8)
    q = np.round((pts - (x0, y0)) * 16).astype(np.int32)
    for i in range(len(q) - 1):
        t = max(1, int(round(widths[i])))
        cv2.line(canvas, tuple(q[i]), tuple(q[i + 1]), 255, t, cv2.LINE_AA, shift=4)
    return canvas.astype(F32) / F32(255), y0, x0


def stroke(rng: np.random.Generator, centre: tuple[float, float], length: float,
           width: float, *, bend: float = 0.6, jitter: float = 0.0,
           angle: float | None = None) -> Shape:
    """A tapered curved line (scratch, crack, fibre): layer ``alpha``."""
    pts = _path(rng, centre, length, bend, jitter, angle)
    n = len(pts) - 1
    pos = np.linspace(0, 1, n)
    taper = np.clip(np.sin(np.pi * pos) * 1.6, 0.35, 1.0)
    widths = width * taper * rng.uniform(0.8, 1.2, n)
    alpha, y0, x0 = _draw(pts, widths, int(width) + 3)
    alpha *= np.clip(alpha * 1.5, 0, 1)
    return Shape({"alpha": alpha}, y0, x0)


def streaked(rng: np.random.Generator, centre: tuple[float, float], area: float, *,
             aspect: tuple[float, float], pitch: float) -> Shape:
    """A soft elongated patch filled with parallel streaks along its long axis.

    Layers: ``alpha`` (the patch) and ``tex`` (streaks in [0, 1]).
    """
    ang = rng.uniform(0, np.pi)
    shape = blob(rng, centre, area, aspect=aspect, angle=ang, wobble=0.08, ragged=0.15, soft=0.35)
    size = shape.layers["alpha"].shape[0]
    yy = np.arange(size, dtype=F32)[:, None]
    xx = np.arange(size, dtype=F32)[None, :]
    across = -xx * F32(np.sin(ang)) + yy * F32(np.cos(ang))
    along = xx * F32(np.cos(ang)) + yy * F32(np.sin(ang))
    phase = rng.uniform(0, 2 * np.pi, 3)
    tex = (np.sin(across * F32(2 * np.pi / pitch) + F32(phase[0]))
           + 0.6 * np.sin(across * F32(2 * np.pi / (pitch * 2.7)) + F32(phase[1]))
           + 0.5 * _noise(rng, size, pitch * 0.7)
           + 0.3 * np.sin(along * F32(2 * np.pi / (pitch * 11)) + F32(phase[2])))
    tex = np.clip(0.5 + 0.3 * tex, 0, 1) ** 2
    shape.layers["tex"] = tex.astype(F32)
    return shape


def arc(rng: np.random.Generator, origin: tuple[float, float], centre: tuple[float, float],
        length: float, thickness: float, outward: bool) -> Shape:
    """A band along the circle about ``origin`` through ``centre`` (warped lamination edges).

    Layers: ``alpha``, ``height`` (a ridge along the band, tapering at its ends) and ``ramp``
    (0 to 1 across the band, rising away from ``origin`` when ``outward``, towards it otherwise).
    """
    dy, dx = centre[0] - origin[0], centre[1] - origin[1]
    r0 = float(np.hypot(dy, dx))
    th0 = float(np.arctan2(dy, dx))
    span = length / max(r0, 1.0)
    y0, x0, size, yy, xx = _canvas(centre, length / 2 + thickness)
    py, px = yy + F32(dy), xx + F32(dx)
    r = np.sqrt(py * py + px * px)
    dth = np.angle(np.exp(1j * (np.arctan2(py, px) - th0))).astype(F32)
    freq = F32(rng.uniform(6, 14) / max(span, 1e-3))
    wob = 1.0 + 0.3 * np.sin(dth * freq + F32(rng.uniform(0, 6.3)))
    rel = (r - F32(r0)) / F32(thickness / 2) / wob  # -1 .. 1 across the band
    across = 1.0 - np.abs(rel)
    along = 1.0 - np.abs(dth) / F32(span / 2)
    t = np.minimum(across, along * 3)
    alpha = np.clip(t / 0.2, 0, 1).astype(F32)
    height = (np.clip(across, 0, 1) ** 0.7 * np.clip(along * 2, 0, 1)).astype(F32)
    ramp = np.clip(0.5 + 0.5 * (rel if outward else -rel), 0, 1) * np.clip(along * 3, 0, 1)
    return Shape({"alpha": alpha, "height": height, "ramp": ramp.astype(F32)}, y0, x0)


def strands(rng: np.random.Generator, centre: tuple[float, float], area: float,
            width: float) -> Shape:
    """Loose wire strands: one or more thick curved wires and their soft shadow.

    Layers: ``alpha`` (wires plus shadow), ``core`` (the wires' coverage), ``round`` (their
    cylindrical height, 1 on the axes) and ``shadow``.
    """
    n = 1 if area < 2500 else int(rng.integers(2, 4)) if area < 9000 else int(rng.integers(4, 7))
    length = min(area / (width * 1.6 * n), 60 + 40 * n)
    ang = rng.uniform(0, 2 * np.pi)
    bend = 1.2 if n == 1 else 3.0
    paths = []
    for _ in range(n):
        start = (centre[0] + rng.normal(0, width * 3), centre[1] + rng.normal(0, width * 3))
        paths.append(_path(rng, start, length * rng.uniform(0.8, 1.2), bend,
                           angle=ang + rng.normal(0, 0.8)))
    allpts = np.concatenate(paths)
    pad = int(width * 3) + 4
    x0 = int(np.floor(allpts[:, 0].min())) - pad
    y0 = int(np.floor(allpts[:, 1].min())) - pad
    w = int(np.ceil(allpts[:, 0].max())) + pad - x0 + 1
    h = int(np.ceil(allpts[:, 1].max())) + pad - y0 + 1
    core = np.zeros((h, w), F32)
    for pts in paths:
        c, cy0, cx0 = _draw(pts, np.full(len(pts) - 1, width), 2)
        sub = core[cy0 - y0:cy0 - y0 + c.shape[0], cx0 - x0:cx0 - x0 + c.shape[1]]
        np.maximum(sub, c, out=sub)
    solid = (core > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(solid, cv2.DIST_L2, 3)
    prof = 1.0 - np.clip(dist / F32(width / 2), 0, 1)
    round_ = np.sqrt(np.clip(1.0 - prof * prof, 0, 1)) * solid  # height of a round wire
    core = cv2.GaussianBlur(core, (0, 0), 0.6)
    shift = max(2, int(width * 0.6))
    shadow = np.zeros_like(core)
    shadow[shift:, shift:] = core[:-shift, :-shift]
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, width / 2)) * (1 - core)
    if n > 1:  # strands lying together cast one shadow that joins them
        halo = cv2.GaussianBlur(core, (0, 0), width * 2)
        shadow = np.maximum(shadow, np.clip(halo * 2.5, 0, 0.8))
        shadow *= 1 - core
    alpha = np.maximum(core, shadow * 0.8)
    return Shape({"alpha": alpha.astype(F32), "core": core, "round": round_.astype(F32),
                  "shadow": shadow.astype(F32)}, y0, x0)
