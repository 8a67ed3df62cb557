"""Evaluation protocols: how maps and masks are brought onto one grid, and what is measured.

Every setting of a :class:`Protocol` is recorded in results.json and read by the scoring
code: the grid, the region connectivity (:attr:`Protocol.connectivity`) and the region-size
classes (:attr:`Protocol.small_max_area`, :attr:`Protocol.medium_max_area`, as the area
ranges of pycocotools' ``COCOeval``). ``docs/protocols.md`` describes both protocols for
users.

* ``standard`` (default): each image's native size; maps of another size are resized with
  bilinear interpolation (:mod:`eval.resize`: in float32 for float32 and narrower maps, else
  in float64); image label from the folder (good vs defect);
  I-AUROC, I-AP; P-AUROC, P-AP over all pixels of a category; AUPRO as MVTec AD defines
  it (regions pooled over the category, FPR over all its normal pixels, every distinct
  score a threshold, integrated to FPR 0.3, divided by 0.3). All exact.
* ``paper``: the 3CAD authors' protocol, to reproduce the published tables: a 256x256
  squashed grid, masks resized with PIL's nearest rule and binarised at 0.5, image label
  from the resized mask, and their per-image 200-threshold PRO averaged over defective
  images (``shared/3cad_facts.md``). Pixel AUROC/AP are exact on that grid.

Both report per defect type (that type's defective images plus all good images of the
category) and AUPRO per region size (small < 32x32 px, medium up to 96x96, large above;
for ``paper``, on the 256 grid, with the pooled MVTec AUPRO since the authors' PRO has no
size breakdown).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from threecad.errors import UsageError
from threecad.regions import MEDIUM_MAX_AREA, SIZE_CLASSES, SMALL_MAX_AREA

__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "IMAGE_SCORE_AS_SUBMITTED", "IMAGE_SCORE_ON_GRID",
           "IMAGE_LABEL_FOLDER", "IMAGE_LABEL_RESIZED_MASK"]

IMAGE_LABEL_FOLDER = "folder"
"""``Protocol.image_label``: an image is defective when its folder is not ``good``."""
IMAGE_LABEL_RESIZED_MASK = "resized_mask"
"""``Protocol.image_label``: an image is defective when its mask on the grid has a defect pixel."""

IMAGE_SCORE_AS_SUBMITTED = "scores.csv, else max of the map as submitted"
"""``Protocol.image_score``: without scores.csv, the maximum of the map at its own size."""
IMAGE_SCORE_ON_GRID = "scores.csv, else max of the map on the grid"
"""``Protocol.image_score``: without scores.csv, the maximum of the map on the protocol grid."""


@dataclass(frozen=True)
class Protocol:
    """Every setting of an evaluation protocol (all recorded in results.json)."""

    name: str
    grid: str                 # "native" or "<n>x<n>"
    map_resize: str           # how maps of another size reach the grid
    mask_resize: str          # how masks reach the grid
    image_label: str          # "folder" or "resized_mask"
    image_score: str          # how an image's score is obtained without scores.csv
    aupro: str                # "mvtec" (pooled, exact) or "paper_per_image"
    fpr_limit: float = 0.3
    pro_thresholds: int | None = None
    connectivity: int = 8
    small_max_area: int = SMALL_MAX_AREA
    medium_max_area: int = MEDIUM_MAX_AREA

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if not 0 < self.small_max_area <= self.medium_max_area:
            raise ValueError("the size classes need 0 < small_max_area <= medium_max_area, got "
                             f"{self.small_max_area} and {self.medium_max_area}")
        if not 0.0 < self.fpr_limit <= 1.0:
            raise ValueError(f"fpr_limit must be in (0, 1], got {self.fpr_limit}")
        if self.image_label not in (IMAGE_LABEL_FOLDER, IMAGE_LABEL_RESIZED_MASK):
            raise ValueError(f"image_label must be {IMAGE_LABEL_FOLDER!r} or {IMAGE_LABEL_RESIZED_MASK!r}, "
                             f"got {self.image_label!r}")
        if self.image_score not in (IMAGE_SCORE_AS_SUBMITTED, IMAGE_SCORE_ON_GRID):
            raise ValueError(f"unknown image_score rule {self.image_score!r}")
        if self.aupro not in ("mvtec", "paper_per_image"):
            raise ValueError(f"aupro must be 'mvtec' or 'paper_per_image', got {self.aupro!r}")

    @property
    def area_ranges(self) -> dict[str, tuple[float, float]]:
        """Region area range of each size class, ``[low, high)`` in pixels of the grid.

        As ``COCOeval.params.areaRng`` (pycocotools), but half-open so that every area has
        exactly one class: ``small`` below :attr:`small_max_area`, ``medium`` up to and
        including :attr:`medium_max_area`, ``large`` above.
        """
        return {SIZE_CLASSES[0]: (0, self.small_max_area),
                SIZE_CLASSES[1]: (self.small_max_area, self.medium_max_area + 1),
                SIZE_CLASSES[2]: (self.medium_max_area + 1, float("inf"))}

    def size_classes(self, areas: np.ndarray) -> np.ndarray:
        """The size class of each region, as an index into ``SIZE_CLASSES``.

        Parameters
        ----------
        areas : ndarray of shape (n,), int
            Region areas in pixels of the protocol grid.

        Returns
        -------
        ndarray of shape (n,), int8
            0 (small), 1 (medium) or 2 (large), by :attr:`area_ranges`.
        """
        a = np.asarray(areas)
        cls = np.full(a.shape, 2, np.int8)
        cls[a <= self.medium_max_area] = 1
        cls[a < self.small_max_area] = 0
        return cls

    @property
    def grid_size(self) -> int | None:
        """The square grid side, or None for native size."""
        return None if self.grid == "native" else int(self.grid.split("x")[0])

    def to_dict(self) -> dict[str, object]:
        """Plain values, for results.json."""
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    "standard": Protocol(
        name="standard", grid="native",
        map_resize="bilinear when the size differs: in float32 for float32 and narrower maps, in float64 otherwise",
        mask_resize="none", image_label=IMAGE_LABEL_FOLDER,
        image_score=IMAGE_SCORE_AS_SUBMITTED, aupro="mvtec"),
    "paper": Protocol(
        name="paper", grid="256x256", map_resize="bilinear in float64 when not 256x256",
        mask_resize="the image's own-folder mask only, as stored; PIL nearest to 256x256, then ToTensor "
                    "(8-bit values / 255) > 0.5",
        image_label=IMAGE_LABEL_RESIZED_MASK, image_score=IMAGE_SCORE_ON_GRID, aupro="paper_per_image",
        pro_thresholds=200),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; :class:`UsageError` for an unknown one."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None
