"""One sample image: the part, its defects, the per-type masks, as 8-bit arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .defects import paint_defects
from .plan import PlannedImage
from .shots import take_shot
from .surfaces import render_scene

__all__ = ["RenderedImage", "render_image"]


@dataclass(frozen=True)
class RenderedImage:
    """A drawn image and its ground truth.

    Attributes
    ----------
    image : numpy.ndarray
        uint8, ``(h, w)`` grey or ``(h, w, 3)`` RGB.
    masks : tuple of numpy.ndarray
        One uint8 ``(h, w)`` mask (0 or 255) per defect type, in the item's type order.
    region_areas : tuple of int
        Pixel count of every region, type by type.
    """

    image: np.ndarray
    masks: tuple[np.ndarray, ...]
    region_areas: tuple[int, ...]


def render_image(code: str, item: PlannedImage, channels: int, part_rng: np.random.Generator,
                 rng: np.random.Generator) -> RenderedImage:
    """Draw ``item`` of category ``code``: its part from ``part_rng`` (shared by every shot of
    the part), then its shot and defects from its own stream ``rng``."""
    scene = take_shot(render_scene(code, part_rng, item.height, item.width, channels), rng)
    masks: list[np.ndarray] = []
    areas: list[int] = []
    if item.types:
        for regions in paint_defects(scene, item.types, item.counts, rng):
            mask = np.zeros((item.height, item.width), np.uint8)
            for reg in regions:
                y0, x0, y1, x1 = reg.box
                mask[y0:y1, x0:x1][reg.mask] = 255
                areas.append(reg.area)
            masks.append(mask)
    img = scene.image
    img *= 255.0
    img += 0.5
    np.clip(img, 0, 255, out=img)
    image = img.astype(np.uint8)
    return RenderedImage(image, tuple(masks), tuple(areas))
