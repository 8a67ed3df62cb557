"""Aluminium parts: camera cover, tablet backs, phone middle frames, laptop shell.

Machined, brushed or bead-blasted (and for some, anodised in a colour) aluminium on a dark
fixture, with diamond-cut chamfers along edges, holes and cut-outs, under a soft light.
"""

from __future__ import annotations

import cv2
import numpy as np

from .scene import Scene, finish_scene
from .texture import (axes, bevel, brushed, coverage, grain, lighting, sd_circle, sd_round_rect,
                      smooth_noise)

__all__ = ["camera_cover", "ipad", "frame", "new_frame", "new_ipad", "pc"]

F32 = np.float32

# Anodised aluminium colours (RGB multipliers of the grey rendering).
_ALU_TINTS: tuple[tuple[float, float, float], ...] = (
    (0.97, 0.99, 1.03),   # silver
    (0.62, 0.65, 0.70),   # space grey
    (0.55, 0.68, 0.92),   # blue
    (1.02, 0.90, 0.74),   # gold
    (1.00, 0.84, 0.80),   # rose
    (0.70, 0.82, 0.74),   # green
)


def _tinted(lum: np.ndarray, tint: tuple[float, float, float], cov: np.ndarray,
            fill: np.ndarray | list[np.ndarray], neutral: np.ndarray | None = None) -> np.ndarray:
    """RGB image of a tinted metal part over a fill.

    ``lum * tint + neutral`` (the untinted term: bare, diamond-cut metal) where ``cov`` is 1,
    ``fill`` (grey, or one plane per channel) where it is 0. Works plane by plane and
    interleaves once at the end, which is much faster than broadcasting over a channel axis.
    """
    planes = []
    for c in range(3):
        metal = lum * F32(tint[c])
        if neutral is not None:
            metal += neutral
        f = fill[c] if isinstance(fill, list) else fill
        planes.append((f + (metal - f) * cov).astype(F32))
    return cv2.merge(planes)


def _lens(fill: np.ndarray, cy: float, cx: float, radius: float, light: tuple[float, float],
          rng: np.random.Generator) -> None:
    """Paint the dark glass of a camera lens seen through a round hole into ``fill``.

    A faint inner ring and a reflection arc on the side facing the light.
    """
    h, w = fill.shape
    y0, y1 = max(0, int(cy - radius) - 2), min(h, int(cy + radius) + 3)
    x0, x1 = max(0, int(cx - radius) - 2), min(w, int(cx + radius) + 3)
    if y1 <= y0 or x1 <= x0:
        return
    d = sd_circle(y1 - y0, x1 - x0, cy - y0, cx - x0, radius)
    ring = np.exp(-((d + radius * 0.35) / (radius * 0.05)) ** 2)
    yy, xx = axes(y1 - y0, x1 - x0)
    facing = ((yy - (cy - y0)) * light[0] + (xx - (cx - x0)) * light[1]) / F32(radius)
    arc = np.exp(-((d + radius * 0.18) / (radius * 0.04)) ** 2) * np.clip(facing, 0, 1)
    glass = 0.05 + 0.08 * ring + 0.35 * arc + 0.02 * rng.uniform()
    sub = fill[y0:y1, x0:x1]
    sub[...] = np.where(d < 2, glass, sub)


def camera_cover(rng: np.random.Generator, h: int, w: int) -> Scene:
    """ACC: an anodised camera deco plate with round lens holes and diamond-cut chamfers."""
    light_f, light = lighting(rng, h, w, 0.22)
    s = min(h, w)
    cy, cx = h / 2 + rng.uniform(-0.03, 0.03) * h, w / 2 + rng.uniform(-0.03, 0.03) * w
    hh, hw = h * rng.uniform(0.40, 0.46), w * rng.uniform(0.40, 0.46)
    sd_part = sd_round_rect(h, w, cy, cx, hh, hw, s * rng.uniform(0.12, 0.25))
    n = int(rng.integers(1, 4))
    r = s * (rng.uniform(0.20, 0.26) if n == 1 else rng.uniform(0.12, 0.16))
    if n == 1:
        centres = [(cy, cx)]
    elif n == 2:
        off = 0.5 * min(hh, hw) if hh < hw else 0.0
        dy = 0 if off else hh * 0.45
        centres = [(cy - dy, cx - off), (cy + dy, cx + off)]
    else:
        centres = [(cy - hh * 0.45, cx - hw * 0.4), (cy + hh * 0.45, cx - hw * 0.4),
                   (cy, cx + hw * 0.42)]
    centres = [(y + rng.normal(0, s * 0.01), x + rng.normal(0, s * 0.01)) for y, x in centres]
    sd_holes = np.minimum.reduce([sd_circle(h, w, y, x, r) for y, x in centres])
    sd = np.maximum(sd_part, -sd_holes)
    g = grain(rng, h, w, 1.0)
    low = smooth_noise(rng, h, w, s / 3)
    base = (0.55 + 0.05 * low + 0.035 * g) * light_f
    cut = bevel(sd_part, s * 0.03, light, 0.55)
    cut += bevel(-sd_holes, s * 0.02, light, 0.7)
    tint = _ALU_TINTS[int(rng.integers(len(_ALU_TINTS)))]
    bg = 0.07 + 0.01 * g + 0.03 * low
    for y, x in centres:
        _lens(bg, y, x, r, light, rng)
    image = _tinted(base, tint, coverage(sd), bg, cut)
    return finish_scene(rng, image, sd < -0.5, light, max(4, s // 40))


def _corner_rect(rng: np.random.Generator, h: int, w: int, inset: tuple[float, float],
                 radius: float) -> tuple[np.ndarray, float, float, int, int]:
    """Signed distance to a large plate whose one corner shows in the frame.

    Returns the sdf, the corner's position ``(py, px)`` and the corner's signs (which way the
    plate extends from it).
    """
    sy, sx = int(rng.choice([-1, 1])), int(rng.choice([-1, 1]))
    py = h * rng.uniform(*inset) if sy > 0 else h * (1 - rng.uniform(*inset))
    px = w * rng.uniform(*inset) if sx > 0 else w * (1 - rng.uniform(*inset))
    big_h, big_w = 2.0 * h, 2.0 * w
    sd = sd_round_rect(h, w, py + sy * big_h, px + sx * big_w, big_h, big_w, radius)
    return sd, py, px, sy, sx


def _slot(h: int, w: int, cy: float, cx: float, length: float, width: float,
          vertical: bool) -> np.ndarray:
    """Signed distance to a stadium-shaped slot (ports, buttons), computed near it only."""
    hh, hw = (length / 2, width / 2) if vertical else (width / 2, length / 2)
    return sd_round_rect(h, w, cy, cx, hh, hw, width / 2, reach=min(h, w) * 0.03 + 8)


def ipad(rng: np.random.Generator, h: int, w: int) -> Scene:
    """AI: the brushed back of a tablet at a rounded corner, with a row of speaker holes."""
    light_f, light = lighting(rng, h, w, 0.2)
    s = min(h, w)
    sd_plate, py, px, sy, sx = _corner_rect(rng, h, w, (-0.1, 0.22), s * rng.uniform(0.15, 0.3))
    vertical = bool(rng.integers(2))
    n_holes = int(rng.integers(4, 10))
    hr = s * rng.uniform(0.008, 0.014)
    gap = hr * rng.uniform(3.0, 4.5)
    inset = s * rng.uniform(0.08, 0.14)
    along0 = (w if not vertical else h) * rng.uniform(0.3, 0.5)
    holes = []
    for k in range(n_holes):
        a = along0 + k * gap
        if vertical:
            holes.append(sd_circle(h, w, a, px + sx * inset, hr, reach=hr + 8))
        else:
            holes.append(sd_circle(h, w, py + sy * inset, a, hr, reach=hr + 8))
    sd_holes = np.minimum.reduce(holes)
    sd = np.maximum(sd_plate, -sd_holes)
    g = grain(rng, h, w, 1.0)
    low = smooth_noise(rng, h, w, s / 2)
    base = 0.58 + brushed(rng, h, w, int(rng.integers(40, 120)), 0.035, vertical=not vertical)
    base += 0.012 * g + 0.03 * low
    base = base * light_f
    base += bevel(sd_plate, s * 0.035, light, 0.5)
    base += bevel(-sd_holes, max(2.0, hr * 0.5), light, 0.5)
    bg = 0.06 + 0.01 * g + 0.02 * low
    cov = coverage(sd)
    image = base * cov + np.where(sd_holes < 0, 0.03, bg) * (1 - cov)
    return finish_scene(rng, image, sd < -0.5, light, max(4, s // 40))


def frame(rng: np.random.Generator, h: int, w: int) -> Scene:
    """AMF: a corner of a phone middle frame: an L-shaped machined band with button slots."""
    light_f, light = lighting(rng, h, w, 0.2)
    s = min(h, w)
    radius = s * rng.uniform(0.12, 0.25)
    sd_out, py, px, sy, sx = _corner_rect(rng, h, w, (0.06, 0.18), radius)
    band = s * rng.uniform(0.16, 0.24)
    big_h, big_w = 2.0 * h, 2.0 * w
    sd_in = sd_round_rect(h, w, py + sy * big_h, px + sx * big_w, big_h - band, big_w - band,
                          max(4.0, radius - band))
    # button slots through the band, along its horizontal arm
    n_slots = int(rng.integers(1, 3))
    slots = []
    for k in range(n_slots):
        length = w * rng.uniform(0.08, 0.16)
        cxk = px + sx * (band + radius + w * (0.12 + 0.3 * k) + length / 2)
        slots.append(_slot(h, w, py + sy * band * 0.5, cxk, length, band * 0.32, False))
    sd_slot = np.minimum.reduce(slots)
    sd = np.maximum.reduce([sd_out, -sd_in, -sd_slot])
    yy, xx = axes(h, w)
    horiz = (yy - py) * sy < (xx - px) * sx  # mitred split between the two arms
    tex = np.where(horiz, brushed(rng, h, w, 80, 0.04), brushed(rng, h, w, 80, 0.04, vertical=True))
    g = grain(rng, h, w, 1.0)
    base = (0.5 + tex + 0.015 * g) * light_f
    base += bevel(sd_out, s * 0.025, light, 0.55)
    base += bevel(-sd_in, s * 0.02, light, 0.45)
    base += bevel(-sd_slot, s * 0.012, light, 0.5)
    # a second, thin chamfer line along the outer edge
    base += 0.12 * np.exp(-((sd_out + s * 0.045) / 1.2) ** 2)
    inner = 0.15 + 0.05 * smooth_noise(rng, h, w, s / 6, 2) + 0.012 * g
    # inner structure: a grid of ribs and screw bosses, lit from the side
    pitch = s * rng.uniform(0.14, 0.22)
    rib = (np.abs(((xx - px) % F32(pitch)) - pitch / 2) < s * 0.008) \
        | (np.abs(((yy - py) % F32(pitch * 1.3)) - pitch * 0.65) < s * 0.008)
    inner = np.where(rib, inner + 0.09, inner)
    for k in range(int(rng.integers(1, 4))):
        by = py + sy * (band + pitch * (k + 1) * 0.9)
        bx = px + sx * (band + pitch * rng.uniform(0.8, 2.5))
        boss = sd_circle(h, w, by, bx, s * 0.03, reach=4)
        inner = np.where(boss < 0, 0.32 - 0.25 * (boss > -s * 0.012), inner)
    outside = 0.05 + 0.01 * g
    fill = np.where(sd_in < 0, inner, outside)
    cov = coverage(sd)
    image = base * cov + fill * (1 - cov)
    return finish_scene(rng, image, sd < -0.5, light, max(4, s // 50))


def new_frame(rng: np.random.Generator, h: int, w: int) -> Scene:
    """ANMF: a straight run of a flat-sided middle frame with antenna gaps and a pin hole."""
    vertical = bool(rng.integers(2))
    if vertical:
        h, w = w, h
    light_f, light = lighting(rng, h, w, 0.2)
    s = min(h, w)
    yy, xx = axes(h, w)
    top, bot = h * rng.uniform(0.2, 0.32), h * rng.uniform(0.66, 0.8)
    sd_band = np.maximum(top - yy, yy - bot) + 0 * xx
    gaps = []
    for _ in range(int(rng.integers(1, 3))):
        gx = w * rng.uniform(0.15, 0.85)
        gaps.append(np.abs(xx - gx) - rng.uniform(3, 6) + 0 * yy)
    sd_gap = np.minimum.reduce(gaps)
    sd_pin = sd_circle(h, w, (top + bot) / 2, w * rng.uniform(0.1, 0.9),
                       s * rng.uniform(0.012, 0.02), reach=8)
    sd = np.maximum.reduce([sd_band, -sd_gap, -sd_pin])
    g = grain(rng, h, w, 1.0)
    base = 0.55 + brushed(rng, h, w, int(rng.integers(60, 160)), 0.03) + 0.014 * g
    base = base * light_f
    width = (bot - top) * rng.uniform(0.1, 0.16)
    base += bevel(sd_band, width, light, 0.5)
    base += 0.18 * np.exp(-((sd_band + width * 1.6) / 1.0) ** 2)  # fine diamond-cut line
    base += bevel(-sd_pin, 3.0, light, 0.6)
    tint = _ALU_TINTS[int(rng.integers(len(_ALU_TINTS)))]
    below = 0.05 + 0.04 * smooth_noise(rng, h, w, s / 4, 2) + 0.06 * (yy > bot)
    below = np.where(sd_pin < 0, 0.02, below)
    in_gap = (sd_gap < 0) & (sd_band < 0)
    fill = [np.where(in_gap, F32(p) + 0.01 * g, below) for p in (0.16, 0.17, 0.19)]
    image = _tinted(base, tint, coverage(sd), fill)
    part = sd < -0.5
    if vertical:
        image, part = np.ascontiguousarray(image.transpose(1, 0, 2)), np.ascontiguousarray(part.T)
        light = (light[1], light[0])
    return finish_scene(rng, image, part, light, max(4, s // 50))


def new_ipad(rng: np.random.Generator, h: int, w: int) -> Scene:
    """ANI: the bead-blasted back of a tablet around the raised camera module."""
    light_f, light = lighting(rng, h, w, 0.2)
    s = min(h, w)
    side = s * rng.uniform(0.32, 0.45)
    my, mx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.3, 0.7)
    sd_mod = sd_round_rect(h, w, my, mx, side / 2, side / 2, side * rng.uniform(0.22, 0.3))
    r = side * rng.uniform(0.2, 0.26)
    two = bool(rng.integers(2))
    centres = [(my - side * 0.22, mx - side * 0.2)] if two else [(my, mx)]
    if two:
        centres.append((my + side * 0.22, mx - side * 0.2))
    sd_holes = np.minimum.reduce([sd_circle(h, w, y, x, r * (0.85 if two else 1.2))
                                  for y, x in centres])
    flash = sd_circle(h, w, my - side * 0.32, mx + side * 0.32, side * 0.05, reach=6)
    g = grain(rng, h, w, 1.0, 0.8)
    base = (0.5 + 0.03 * smooth_noise(rng, h, w, s / 3) + 0.03 * g) * light_f
    base += bevel(sd_mod, side * 0.05, light, 0.35)
    base -= 0.08 * np.exp(-(sd_mod / 3.0) ** 2)  # the seam around the module
    base += bevel(-sd_holes, side * 0.035, light, 0.6)
    base = np.where(flash < 0, 0.75 + 0.05 * np.tanh(-flash / 3), base)
    sd = -sd_holes
    edge = rng.integers(3)  # 0: no plate edge in view; 1, 2: one straight edge
    if edge:
        sd_plate, *_ = _corner_rect(rng, h, w, (-0.3, 0.12), s * 0.2)
        base += bevel(sd_plate, s * 0.03, light, 0.5)
        sd = np.maximum(sd, sd_plate)
    fill = 0.06 + 0.01 * g
    for y, x in centres:
        _lens(fill, y, x, r * (0.85 if two else 1.2), light, rng)
    cov = coverage(sd)
    image = base * cov + fill * (1 - cov)
    return finish_scene(rng, image, sd < -0.5, light, max(4, s // 40))


def pc(rng: np.random.Generator, h: int, w: int) -> Scene:
    """AP: a laptop shell along its side edge with ports and a vent grille."""
    light_f, light = lighting(rng, h, w, 0.22)
    s = min(h, w)
    sd_plate, py, px, sy, sx = _corner_rect(rng, h, w, (-0.2, 0.15), s * rng.uniform(0.08, 0.2))
    # ports near the horizontal edge
    cuts = []
    edge_y = py + sy * s * rng.uniform(0.12, 0.2)
    x0 = px + sx * w * rng.uniform(0.25, 0.35)
    for k in range(int(rng.integers(1, 3))):
        length = s * rng.uniform(0.14, 0.2)
        cuts.append(_slot(h, w, edge_y, x0 + sx * k * length * 1.5, length, length * 0.35, False))
    sd_ports = np.minimum.reduce(cuts)
    if rng.integers(2):  # headphone jack
        cuts.append(sd_circle(h, w, edge_y, x0 + sx * w * 0.45, s * 0.035, reach=s * 0.02 + 8))
    # vent slits further in
    vy = edge_y + sy * s * rng.uniform(0.18, 0.28)
    for k in range(int(rng.integers(4, 9))):
        cuts.append(_slot(h, w, vy, x0 + sx * k * s * 0.05, s * 0.12, s * 0.02, True))
    sd_cut = np.minimum.reduce(cuts)
    sd = np.maximum(sd_plate, -sd_cut)
    g = grain(rng, h, w, 1.0, 0.8)
    low = smooth_noise(rng, h, w, s / 3)
    base = 0.52 + 0.04 * low + 0.028 * g
    base += brushed(rng, h, w, 60, 0.012)
    base = base * light_f
    base += bevel(sd_plate, s * 0.03, light, 0.55)
    base += bevel(-sd_cut, max(2.5, s * 0.008), light, 0.55)
    tint = _ALU_TINTS[int(rng.integers(4))]
    yy, xx = axes(h, w)
    tongue = (np.abs(yy - edge_y) < s * 0.012) & (sd_ports < 0)  # USB-C: the contact tongue
    hole = np.where(tongue, 0.2, 0.03) + 0.01 * g
    outside = 0.06 + 0.01 * g + 0.02 * low
    fill = np.where(sd_cut < 1, hole, outside)
    image = _tinted(base, tint, coverage(sd), fill)
    return finish_scene(rng, image, sd < -0.5, light, max(4, s // 40))
