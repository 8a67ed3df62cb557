"""The result of drawing a defect-free part, and what defect painters need to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .texture import points

__all__ = ["Scene", "finish_scene"]

F32 = np.float32


@dataclass
class Scene:
    """A rendered defect-free part.

    Attributes
    ----------
    image : numpy.ndarray
        float32 ``(h, w)`` (grey) or ``(h, w, 3)`` (RGB), values in about [0, 1].
    part : numpy.ndarray
        bool ``(h, w)``: the part's material (where surface defects lie).
    light : tuple of float
        In-plane unit direction ``(dy, dx)`` towards the light.
    anchors : dict
        Candidate defect centres by kind (``surface``, ``edge``, ...), each an ``(n, 2)`` array
        of ``(y, x)``.
    centre : tuple of float or None
        The part's centre, for parts with rotational symmetry (stators).
    """

    image: np.ndarray
    part: np.ndarray
    light: tuple[float, float]
    anchors: dict[str, np.ndarray] = field(default_factory=dict)
    centre: tuple[float, float] | None = None


def finish_scene(rng: np.random.Generator, image: np.ndarray, part: np.ndarray,
                 light: tuple[float, float], margin: int, *,
                 centre: tuple[float, float] | None = None,
                 anchors: dict[str, np.ndarray] | None = None) -> Scene:
    """A :class:`Scene` with ``surface`` (``part`` eroded by ``margin`` px) and ``edge`` anchors.

    ``image`` is clipped to [0, 1] in place; ``anchors`` adds renderer-specific sets.
    """
    p8 = part.astype(np.uint8)
    inner = cv2.erode(p8, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    edge = p8 & (1 - cv2.erode(p8, np.ones((3, 3), np.uint8)))
    found = {"surface": points(inner.astype(bool), rng), "edge": points(edge.astype(bool), rng)}
    found.update(anchors or {})
    if len(found["surface"]) == 0:  # pragma: no cover - every renderer leaves material
        found["surface"] = points(part, rng)
    image = image.astype(F32, copy=False)
    np.clip(image, 0.0, 1.0, out=image)
    return Scene(image, part, light, found, centre)
