"""Defect-free part images per category: which renderer draws which category.

Each renderer draws one part as it looks under inspection lighting (aluminium shells, frames
and camera covers in :mod:`.aluminium`; copper and iron stators in :mod:`.stators`) and returns
a :class:`~threecad.sample.scene.Scene`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import aluminium, stators
from .scene import Scene

__all__ = ["Scene", "render_scene", "RENDERERS"]

F32 = np.float32


RENDERERS: dict[str, Callable[[np.random.Generator, int, int], Scene]] = {
    "ACC": aluminium.camera_cover,
    "AI": aluminium.ipad,
    "AMF": aluminium.frame,
    "ANMF": aluminium.new_frame,
    "ANI": aluminium.new_ipad,
    "AP": aluminium.pc,
    "CS": stators.copper_stator,
    "IS": stators.iron_stator,
}


def render_scene(code: str, rng: np.random.Generator, height: int, width: int,
                 channels: int) -> Scene:
    """Render a defect-free part of category ``code`` at ``height`` x ``width``.

    Parameters
    ----------
    code : str
        Category code (``ACC`` ... ``IS``).
    rng : numpy.random.Generator
        The image's own random stream.
    height, width : int
        Image size in pixels.
    channels : int
        1 for a grey image, 3 for RGB; the renderer's output is converted when it differs.

    Returns
    -------
    Scene
    """
    scene = RENDERERS[code](rng, height, width)
    img = scene.image
    if channels == 1 and img.ndim == 3:
        scene.image = (img @ np.asarray((0.299, 0.587, 0.114), F32)).astype(F32)
    elif channels == 3 and img.ndim == 2:
        scene.image = np.repeat(img[..., None], 3, axis=2)
    return scene
