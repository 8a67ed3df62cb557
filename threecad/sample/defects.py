"""Defect types: how each one is shaped, where it lies and how it alters the part.

:data:`STYLES` maps every English type name of :data:`threecad.sample.catalog.SAMPLE_TYPES` to a
:class:`Style`; :func:`paint_defects` places regions by rejection sampling (regions never touch:
their boxes keep a gap of at least :data:`GAP` px) and paints them into the scene. Every painter
changes pixels only inside its region's mask, so the mask is exactly the altered area.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Callable

import cv2
import numpy as np

from .scene import Scene
from .shapes import (SIZE_AREAS, SIZE_CLASSES, Region, Shape, arc, blob, finalize, strands,
                     streaked, stroke)

__all__ = ["GAP", "Style", "STYLES", "paint_defects"]

log = logging.getLogger(__name__)

F32 = np.float32
GAP = 2
"""Minimum number of empty pixels between the bounding boxes of two regions."""
MIN_AREA = 24
"""Regions smaller than this (px) are redrawn."""

ShapeFn = Callable[[np.random.Generator, Scene, tuple[float, float], float], Shape]
PaintFn = Callable[[np.ndarray, Region, np.random.Generator, Scene], None]


@dataclass(frozen=True)
class Style:
    """How one defect type is drawn.

    Attributes
    ----------
    shape : callable
        ``(rng, scene, centre, area) -> Shape``.
    paint : callable
        ``(patch, region, rng, scene) -> None``; alters ``patch`` (the region's box of the image,
        a view) in place, only where the region's alpha is non-zero.
    anchor : str
        Which of the scene's anchor sets the centre is drawn from.
    sizes : tuple of str
        Size classes the type comes in.
    within : str
        ``part`` (clip to the material), ``outside`` (clip to what is not material) or ``any``.
    """

    shape: ShapeFn
    paint: PaintFn
    anchor: str = "surface"
    sizes: tuple[str, ...] = SIZE_CLASSES
    within: str = "part"


# ---------------------------------------------------------------- helpers

def _per_channel(patch: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``layer`` broadcastable against ``patch`` (adds a channel axis for RGB)."""
    return layer[..., None] if patch.ndim == 3 else layer


def _colour(patch: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray | np.float32:
    """An RGB colour for an RGB patch, its luminance for a grey one."""
    if patch.ndim == 3:
        return np.asarray(rgb, F32)
    return F32(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _lit(region: Region, scene: Scene, sign: float) -> np.ndarray:
    """Lambert shading change of the region's height field (``sign`` -1: concave), in [-1, 1].

    Zero outside the region's mask (the gradient there would otherwise leak one pixel out).
    """
    hgt = region.layers["height"]
    if min(hgt.shape) < 2:
        return np.zeros_like(hgt)
    gy, gx = np.gradient(hgt * F32(sign))
    lit = -(gy * F32(scene.light[0]) + gx * F32(scene.light[1])) * region.mask
    m = float(np.abs(lit).max())
    return lit / F32(m) if m > 0 else lit


def _speckle(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Smooth noise in [0, 1] for mottled colour."""
    gh, gw = (max(2, int(np.ceil(s / cell)) + 1) for s in shape)
    n = cv2.resize(rng.random((gh, gw), dtype=F32), (shape[1], shape[0]),
                   interpolation=cv2.INTER_CUBIC)
    return np.clip(n, 0, 1)


def _rim(mask: np.ndarray) -> np.ndarray:
    """The one-pixel inner boundary of a mask, as float."""
    m8 = mask.astype(np.uint8)
    padded = cv2.copyMakeBorder(m8, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    inner = cv2.erode(padded, np.ones((3, 3), np.uint8))[1:-1, 1:-1]
    return (m8 - inner).astype(F32)


# ---------------------------------------------------------------- shapes

def _blob_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float], area: float,
                **kw: object) -> Shape:
    return blob(rng, c, area, **kw)  # type: ignore[arg-type]


def _line_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float], area: float,
                widths: tuple[float, float] = (1.2, 3.0), bend: float = 0.6,
                jitter: float = 0.0) -> Shape:
    width = rng.uniform(*widths)
    if area > 1000:
        width *= 1.4
    length = min(area / width, 0.4 * min(scene.part.shape))
    return stroke(rng, c, max(length, 8.0), width, bend=bend, jitter=jitter)


def _streak_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float], area: float,
                  aspect: tuple[float, float] = (1.5, 3.0), pitch: float = 3.0) -> Shape:
    return streaked(rng, c, area, aspect=aspect, pitch=pitch * rng.uniform(0.8, 1.3))


def _foreign_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float],
                   area: float) -> Shape:
    if rng.random() < 0.6:  # a fibre
        return _line_shape(rng, scene, c, area, widths=(1.2, 2.2), bend=2.5, jitter=0.15)
    return blob(rng, c, min(area, 900.0), aspect=(1.0, 2.0), wobble=0.25, ragged=0.35, soft=0.3)


def _burr_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float], area: float,
                ) -> Shape:
    return blob(rng, c, min(area, 350.0) * 2, aspect=(2.0, 4.0), wobble=0.25, soft=0.25)


def _arc_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float], area: float,
               outward: bool = False) -> Shape:
    origin = scene.centre or (scene.part.shape[0] / 2, scene.part.shape[1] / 2)
    length = float(np.clip(np.sqrt(area) * rng.uniform(2.5, 4.0), 10, 420))
    thick = float(np.clip(area / length, 5, 60))
    return arc(rng, origin, c, length, thick, outward)


def _wire_shape(rng: np.random.Generator, scene: Scene, c: tuple[float, float], area: float,
                ) -> Shape:
    return strands(rng, c, area, rng.uniform(3.5, 6.5))


# ---------------------------------------------------------------- painters

def _relief(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene, *,
            sign: float, depth: float, dark: float = 0.0, spec: float = 0.0) -> None:
    """Dents, pits, bumps: shading of a height field, with optional darkening and highlight."""
    lit = _lit(region, scene, sign)
    hgt = region.layers["height"]
    change = lit * F32(depth * rng.uniform(0.8, 1.2)) - F32(dark) * hgt
    if spec:
        change += F32(spec) * np.clip(lit, 0, 1) ** 4
    patch *= 1 + _per_channel(patch, change)
    if spec:
        patch += _per_channel(patch, F32(spec * 0.3) * np.clip(lit, 0, 1) ** 6)


def _line(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene, *,
          bright: float = 0.65, strength: float = 0.45) -> None:
    """Scratches and fibres: a bright (light catching) or dark thin line."""
    a = _per_channel(patch, region.alpha * F32(strength * rng.uniform(0.75, 1.15)))
    if rng.random() < bright:
        patch += (F32(0.95) - patch) * a
    else:
        patch *= 1 - a


def _streaks(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene, *,
             haze: float, contrast: float) -> None:
    """Abrasion and scrapes: a hazy patch of parallel bright and dark streaks."""
    a = region.alpha
    tex = region.layers["tex"]
    change = a * (F32(haze) + F32(contrast) * (tex - 0.35))
    patch += _per_channel(patch, change) * (0.5 + patch)


def _stain(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene, *,
           tint: tuple[float, float, float], strength: float, mottle: float = 0.0,
           iridescent: bool = False) -> None:
    """Stains, oil and rust: a multiplicative tint, optionally mottled or iridescent."""
    a = region.alpha * F32(strength * rng.uniform(0.8, 1.2))
    if mottle:
        a = a * (1 - F32(mottle) + F32(mottle) * _speckle(rng, a.shape, 6.0))
    t = _colour(patch, tint)
    patch *= 1 - _per_channel(patch, a) * (1 - t)
    if iridescent and patch.ndim == 3:
        ph = region.alpha[..., None] * F32(3.0) + np.asarray((0, 1 / 3, 2 / 3), F32)
        ring = (region.alpha * (1 - region.alpha) * 4)[..., None]
        patch += F32(0.07) * ring * np.cos(F32(2 * np.pi) * ph)


def _spot(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene, *,
          white: bool) -> None:
    """Black and white spots."""
    a = _per_channel(patch, region.alpha * F32(rng.uniform(0.45, 0.7)))
    if white:
        patch += (F32(0.95) - patch) * a
    else:
        patch *= 1 - a


def _foreign(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene) -> None:
    """Foreign matter: a dark fibre or particle with a faint sheen."""
    a = region.alpha
    patch *= 1 - _per_channel(patch, a * F32(rng.uniform(0.6, 0.8)))
    patch += _per_channel(patch, F32(0.08) * a * _speckle(rng, a.shape, 3.0))


def _bare_metal(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene, *,
                level: float, outline: float) -> None:
    """Paint loss and edge chips: bright bare aluminium with a dark broken outline."""
    a = region.alpha
    grey = patch.mean(axis=2) if patch.ndim == 3 else patch
    metal = F32(level) + F32(0.35) * (grey - grey.mean()) \
        + F32(0.1) * (_speckle(rng, a.shape, 2.5) - 0.5)
    metal = metal - F32(outline) * _rim(region.mask) + F32(0.18) * _lit(region, scene, -1.0)
    patch += (_per_channel(patch, metal) - patch) * _per_channel(patch, a)


def _burr(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene) -> None:
    """A burr: a small bright metal sliver standing off the edge."""
    a = region.alpha
    metal = F32(0.38) + F32(0.2) * region.layers["height"] + F32(0.15) * _lit(region, scene, 1.0)
    patch += (_per_channel(patch, metal) - patch) * _per_channel(patch, a)


def _warp(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene) -> None:
    """Warped lamination: a sheet edge bent up out of the stack.

    The lifted part catches the light (brighter towards its free edge), a dark crease marks the
    bend, and where the sheet stands proud of the outline it shows as bright metal.
    """
    y0, x0, y1, x1 = region.box
    a, ramp = region.alpha, region.layers["ramp"]
    off = (~scene.part[y0:y1, x0:x1]).astype(F32) * a
    lift = F32(rng.uniform(0.25, 0.4))
    crease = np.exp(-((ramp - 0.2) / 0.09) ** 2) * a
    change = a * (lift * ramp - 0.05) - F32(0.3) * crease
    patch += (F32(0.55) + F32(0.25) * ramp - patch) * off
    patch += change * (0.3 + patch)


def _wire(patch: np.ndarray, region: Region, rng: np.random.Generator, scene: Scene) -> None:
    """Broken wire: loose copper strands with a cylindrical highlight and a shadow."""
    core, shadow, round_ = region.layers["core"], region.layers["shadow"], region.layers["round"]
    patch *= 1 - _per_channel(patch, F32(0.8) * shadow)
    lum = F32(0.25) + F32(0.65) * round_  # round wire: dark flanks, bright crest
    spec = F32(0.3) * round_ ** 12
    wire = _per_channel(patch, lum) * _colour(patch, (0.88, 0.47, 0.22)) \
        + _per_channel(patch, spec) * _colour(patch, (1.0, 0.85, 0.62))
    patch += (wire - patch) * _per_channel(patch, core)


# ---------------------------------------------------------------- the table

_SMALL_MEDIUM = ("small", "medium")
_RAGGED = dict(aspect=(1.0, 2.5), wobble=0.25, ragged=0.35, soft=0.5)

STYLES: dict[str, Style] = {
    "scratch": Style(partial(_line_shape, widths=(1.2, 2.6)), _line, sizes=_SMALL_MEDIUM),
    "dent": Style(partial(_blob_shape, aspect=(1.0, 1.8), wobble=0.1),
                  partial(_relief, sign=-1.0, depth=0.35, dark=0.08)),
    "bump": Style(partial(_blob_shape, aspect=(1.0, 1.6), wobble=0.1),
                  partial(_relief, sign=1.0, depth=0.35, spec=0.25)),
    "pit": Style(partial(_blob_shape, aspect=(1.0, 1.4), wobble=0.15),
                 partial(_relief, sign=-1.0, depth=0.5, dark=0.35), sizes=_SMALL_MEDIUM),
    "sand_hole": Style(partial(_blob_shape, aspect=(1.0, 1.3), wobble=0.2),
                       partial(_relief, sign=-1.0, depth=0.6, dark=0.7), sizes=("small",)),
    "press_mark": Style(partial(_blob_shape, aspect=(1.8, 3.5), wobble=0.06, soft=0.3),
                        partial(_relief, sign=-1.0, depth=0.3, dark=0.05)),
    "protrusion": Style(partial(_blob_shape, aspect=(1.0, 1.5), wobble=0.15),
                        partial(_relief, sign=1.0, depth=0.5, spec=0.4), sizes=_SMALL_MEDIUM),
    "stain": Style(partial(_blob_shape, **_RAGGED),
                   partial(_stain, tint=(0.62, 0.55, 0.42), strength=0.55, mottle=0.3)),
    "oil_stain": Style(partial(_blob_shape, aspect=(1.0, 2.0), wobble=0.2, ragged=0.2, soft=0.6),
                       partial(_stain, tint=(0.55, 0.58, 0.62), strength=0.5, iridescent=True)),
    "rust": Style(partial(_blob_shape, **_RAGGED),
                  partial(_stain, tint=(1.25, 0.6, 0.3), strength=0.6, mottle=0.6)),
    "black_spot": Style(partial(_blob_shape, aspect=(1.0, 1.5), wobble=0.2, soft=0.5),
                        partial(_spot, white=False), sizes=("small",)),
    "white_spot": Style(partial(_blob_shape, aspect=(1.0, 1.5), wobble=0.2, soft=0.5),
                        partial(_spot, white=True), sizes=("small",)),
    "foreign_matter": Style(_foreign_shape, _foreign, sizes=_SMALL_MEDIUM),
    "abrasion": Style(partial(_streak_shape, aspect=(1.2, 2.5), pitch=2.5),
                      partial(_streaks, haze=0.07, contrast=0.16), sizes=("medium", "large")),
    "scrape": Style(partial(_streak_shape, aspect=(3.0, 6.0), pitch=4.0),
                    partial(_streaks, haze=0.02, contrast=0.3)),
    "paint_loss": Style(partial(_blob_shape, aspect=(1.0, 2.5), wobble=0.3, ragged=0.4, soft=0.08),
                        partial(_bare_metal, level=0.64, outline=0.25)),
    "edge_chipping": Style(partial(_blob_shape, aspect=(1.0, 2.0), wobble=0.3, ragged=0.35,
                                   soft=0.1),
                           partial(_bare_metal, level=0.62, outline=0.3),
                           anchor="edge", sizes=_SMALL_MEDIUM, within="part"),
    "burr": Style(_burr_shape, _burr, anchor="edge", sizes=("small",), within="outside"),
    "inner_warped_sheet": Style(_arc_shape, _warp, anchor="inner", within="part"),
    "outer_warped_sheet": Style(partial(_arc_shape, outward=True), _warp, anchor="outer",
                                within="any"),
    "broken_wire": Style(_wire_shape, _wire, anchor="winding"),
}


# ---------------------------------------------------------------- placement

def _touches(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """True when boxes ``a`` and ``b`` are closer than :data:`GAP` empty pixels."""
    return not (a[2] + GAP <= b[0] or b[2] + GAP <= a[0]
                or a[3] + GAP <= b[1] or b[3] + GAP <= a[1])


def _place(scene: Scene, style: Style, rng: np.random.Generator,
           boxes: list[tuple[int, int, int, int]], within: np.ndarray | None,
           required: bool) -> Region | None:
    """Draw regions of ``style`` until one fits clear of ``boxes``; ``None`` after many tries."""
    h, w = scene.part.shape
    anchors = scene.anchors[style.anchor]
    weights = np.asarray([{"small": 0.4, "medium": 0.35, "large": 0.25}[s] for s in style.sizes])
    cls_i = int(rng.choice(len(style.sizes), p=weights / weights.sum()))
    tries = 120 if required else 30
    for attempt in range(tries):
        if attempt and attempt % 10 == 0 and cls_i > 0:
            cls_i -= 1  # crowded: try a smaller size
        lo, hi = SIZE_AREAS[style.sizes[cls_i]]
        area = min(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 0.12 * h * w)
        cy, cx = anchors[int(rng.integers(len(anchors)))]
        reg = finalize(style.shape(rng, scene, (float(cy), float(cx)), area), (h, w), within)
        if reg is None or reg.area < MIN_AREA:
            continue
        if any(_touches(reg.box, b) for b in boxes):
            continue
        return reg
    return None


def paint_defects(scene: Scene, types: tuple[str, ...], counts: tuple[int, ...],
                  rng: np.random.Generator) -> list[list[Region]]:
    """Place and paint ``counts[i]`` regions of ``types[i]`` into ``scene.image`` (in place).

    Every type gets at least one region; further regions that find no free spot are dropped.

    Returns
    -------
    list of list of Region
        The regions of each type, in the order of ``types``.
    """
    h, w = scene.part.shape
    boxes: list[tuple[int, int, int, int]] = []
    outside: np.ndarray | None = None
    result: list[list[Region]] = []
    for name, n in zip(types, counts):
        style = STYLES[name]
        within = None
        if style.within == "part":
            within = scene.part
        elif style.within == "outside":
            outside = ~scene.part if outside is None else outside
            within = outside
        regions: list[Region] = []
        for k in range(n):
            reg = _place(scene, style, rng, boxes, within, required=not regions)
            if reg is None:
                if not regions:
                    raise RuntimeError(f"could not place a {name} region in a {h}x{w} image")
                log.debug("dropped a %s region: no free spot", name)
                continue
            y0, x0, y1, x1 = reg.box
            style.paint(scene.image[y0:y1, x0:x1], reg, rng, scene)
            boxes.append(reg.box)
            regions.append(reg)
        result.append(regions)
    return result
