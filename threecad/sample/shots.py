"""One shot of a part: where it sits under the camera, how it is lit, the sensor's noise.

In the real release the images of one category are nearly identical: the same part design
in the same fixture, photographed again and again. Two distinct shots of one part differ by
a sub-pixel shift, a small change of lighting, the sensor's noise and their (different,
small) defects, so closely that a 64-bit perceptual hash may not tell them apart. The
sample reproduces this: a part is drawn once (:func:`threecad.sample.surfaces.render_scene`)
and every image of it is a shot (:func:`take_shot`) with its own defects painted on top.
"""

from __future__ import annotations

import cv2
import numpy as np

from .scene import Scene
from .texture import axes

__all__ = ["MAX_SHIFT", "GAIN_SPREAD", "GRADIENT_RANGE", "NOISE_SIGMA", "take_shot"]

F32 = np.float32

MAX_SHIFT = 0.75
"""Largest shift of a shot along each axis, in pixels."""
GAIN_SPREAD = 0.06
"""Overall brightness of a shot: a gain drawn from ``1 +- GAIN_SPREAD``."""
GRADIENT_RANGE = (0.02, 0.06)
"""A shot's lighting falls off linearly across the image by this much (towards a random side)."""
NOISE_SIGMA = 1.2 / 255
"""Sensor noise (standard deviation, in [0, 1] units) added to every shot."""


def take_shot(scene: Scene, rng: np.random.Generator) -> Scene:
    """One shot of a drawn part: shifted by a fraction of a pixel, relit, with fresh noise.

    Parameters
    ----------
    scene : Scene
        The part as drawn; left unchanged.
    rng : numpy.random.Generator
        The shot's own random stream.

    Returns
    -------
    Scene
        A new scene (its own image array) with the same part mask, light and anchors: the
        shift is below a pixel, so defect placement is unaffected.
    """
    img = scene.image
    h, w = img.shape[:2]
    dy, dx = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2)
    warp = np.float32([[1, 0, dx], [0, 1, dy]])
    shot = cv2.warpAffine(img, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    gain = 1.0 + rng.uniform(-GAIN_SPREAD, GAIN_SPREAD)
    ang = rng.uniform(0, 2 * np.pi)
    slope = rng.uniform(*GRADIENT_RANGE)
    yy, xx = axes(h, w)
    span = F32(max(h, w))
    field = (F32(np.sin(ang)) * (yy - h / 2) + F32(np.cos(ang)) * (xx - w / 2)) * F32(slope / span)
    field = F32(gain) + field
    if shot.ndim == 3:
        field = field[..., None]
    shot = shot * field
    noise = rng.standard_normal(shot.shape, dtype=F32) * F32(NOISE_SIGMA)
    shot += noise
    np.clip(shot, 0.0, 1.0, out=shot)
    return Scene(shot.astype(F32, copy=False), scene.part, scene.light, scene.anchors, scene.centre)
