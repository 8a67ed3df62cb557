"""Stators seen from above: a wound copper stator and a bare iron lamination stack."""

from __future__ import annotations

import cv2
import numpy as np

from .scene import Scene, finish_scene
from .texture import axes, brushed, grain, lighting, points, sd_circle, smooth_noise

__all__ = ["copper_stator", "iron_stator"]

F32 = np.float32


def _polar(h: int, w: int, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle (radians) of every pixel around ``(cy, cx)``."""
    yy, xx = axes(h, w)
    dy, dx = yy - F32(cy), xx - F32(cx)
    return np.sqrt(dy * dy + dx * dx).astype(F32), np.arctan2(dy, dx).astype(F32)


def _ring_anchor(part: np.ndarray, r: np.ndarray, radius: float, rng: np.random.Generator,
                 tol: float = 2.0) -> np.ndarray:
    """Anchor points on ``part`` within ``tol`` px of the circle of ``radius``."""
    return points(part & (np.abs(r - F32(radius)) < tol), rng)


def copper_stator(rng: np.random.Generator, h: int, w: int) -> Scene:
    """CS: a wound stator from above: copper end turns in a steel ring around the bore."""
    light_f, light = lighting(rng, h, w, 0.15)
    s = min(h, w)
    cy, cx = h / 2 + rng.normal(0, s * 0.01), w / 2 + rng.normal(0, s * 0.01)
    r, th = _polar(h, w, cy, cx)
    r_out = s * rng.uniform(0.44, 0.47)
    r_wo = r_out - s * rng.uniform(0.035, 0.05)
    r_wi = s * rng.uniform(0.22, 0.25)
    r_bore = r_wi - s * rng.uniform(0.02, 0.03)
    n = int(rng.choice([24, 36, 48]))
    frac = th * F32(n / (2 * np.pi)) + F32(rng.uniform())
    frac -= np.floor(frac)
    across = np.sin(F32(np.pi) * frac)  # 0 between bundles, 1 on a bundle's crest
    pitch = rng.uniform(3.0, 4.2)  # wire spacing, px
    wires = np.sin(r * F32(2 * np.pi / pitch) + 2.5 * smooth_noise(rng, h, w, 40, 2))
    t = np.clip((r - F32(r_wi)) / F32(r_wo - r_wi), 0, 1)
    dome = 4 * t * (1 - t)
    a2 = across * across
    a4 = a2 * a2
    g = grain(rng, h, w, 1.0)
    # luminance and colour class: 0 background, 1 steel, 2 copper, 3 slot insulation paper
    wind = (0.35 + 0.65 * np.sqrt(across)) * (0.55 + 0.45 * dome) * (0.75 + 0.125 * (1 + wires))
    steel = 0.42 + 0.02 * g + 0.03 * smooth_noise(rng, h, w, s / 4)
    steel += 0.3 * np.exp(-((r - F32(r_out - 3)) / 2.0) ** 2)
    is_wind = (r > r_wi) & (r < r_wo)
    paper = (r <= r_wi) & (np.abs(frac - 0.5) < 0.12)
    lum = np.where(is_wind, wind, np.where(paper, 0.85, steel)) * light_f
    cls = np.where(is_wind, 2, np.where(paper, 3, 1)).astype(np.uint8)
    cov = np.clip(r - F32(r_bore) + 0.5, 0, 1) * np.clip(F32(r_out) - r + 0.5, 0, 1)
    lum = lum * cov + (0.05 + 0.01 * g) * (1 - cov)
    cls[cov < 0.5] = 0
    table = np.asarray([(1.0, 1.0, 1.0), (0.95, 0.97, 1.0), (0.80, 0.44, 0.22), (1.0, 0.96, 0.84)],
                       F32)
    spec = (a4 * a4 * a4) * dome * (1 + wires) * 0.25 * is_wind
    hi = (1.0, 0.82, 0.62)
    image = cv2.merge([lum * np.take(table[:, c], cls) + spec * F32(hi[c]) for c in range(3)])
    part = (r > r_bore) & (r < r_out)
    winding = points((r > r_wi + 12) & (r < r_wo - 12), rng)
    return finish_scene(rng, image, part, light, 6, centre=(cy, cx),
                         anchors={"winding": winding})


def iron_stator(rng: np.random.Generator, h: int, w: int) -> Scene:
    """IS: a lamination stack from above: yoke ring, parallel-sided teeth with shoes, notches."""
    light_f, light = lighting(rng, h, w, 0.18)
    s = min(h, w)
    cy, cx = h / 2 + rng.normal(0, s * 0.01), w / 2 + rng.normal(0, s * 0.01)
    r, th = _polar(h, w, cy, cx)
    r_out = s * rng.uniform(0.44, 0.48)
    r_yoke = r_out - s * rng.uniform(0.07, 0.1)
    r_in = s * rng.uniform(0.2, 0.25)
    n = int(rng.choice([24, 36, 48]))
    pitch = F32(2 * np.pi / n)
    phase = (th + F32(np.pi)) / pitch + F32(rng.uniform())
    off = (phase - np.floor(phase) - 0.5) * pitch * r  # px from the tooth's centre line
    tooth_w = 2 * np.pi * r_in / n * rng.uniform(0.45, 0.55)
    shoe_h = s * rng.uniform(0.012, 0.02)
    opening = 2 * np.pi * r_in / n * rng.uniform(0.12, 0.2)
    tooth = np.abs(off) < F32(tooth_w / 2)
    shoe = (r < F32(r_in + shoe_h)) & (np.abs(off) < F32(np.pi * r_in / n - opening / 2))
    part = (r >= r_in) & (r <= r_out) & ((r >= r_yoke) | tooth | shoe)
    notches = []
    for k in range(4):
        a = rng.uniform() * 0.1 + k * np.pi / 2
        notches.append(sd_circle(h, w, cy + r_out * np.sin(a), cx + r_out * np.cos(a), s * 0.02,
                                  reach=4))
    part &= np.minimum.reduce(notches) > 0
    g = grain(rng, h, w, 1.0)
    steel = (0.5 + brushed(rng, h, w, 150, 0.02) + 0.022 * g
             + 0.04 * smooth_noise(rng, h, w, s / 5)) * light_f
    p8 = part.astype(np.uint8)
    rim = (p8 - cv2.erode(p8, np.ones((5, 5), np.uint8))).astype(F32)
    rim = cv2.GaussianBlur(rim, (0, 0), 1.0)
    steel = steel + 0.22 * rim
    slot_depth = 0.1 + 0.05 * np.clip((r - F32(r_in)) / F32(r_yoke - r_in), 0, 1)
    inside_ring = (r > r_in) & (r < r_yoke)
    bg = np.where(inside_ring, slot_depth, 0.04) + 0.008 * g
    cov = cv2.GaussianBlur(part.astype(F32), (0, 0), 0.6)
    image = steel * cov + bg * (1 - cov)
    tips = points(part & (r < r_in + 2.5), rng)
    outer = _ring_anchor(part, r, r_out - 1.0, rng)
    return finish_scene(rng, image, part, light, 6, centre=(cy, cx),
                         anchors={"inner": tips, "outer": outer})
