"""Evaluation protocols: how maps and masks are brought onto one grid, and what is measured.

* ``standard`` (default): each image's native size; maps of another size are resized with
  bilinear interpolation (in float64); image label from the folder (good vs defect);
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

from threecad.errors import UsageError
from threecad.regions import MEDIUM_MAX_AREA, SMALL_MAX_AREA

__all__ = ["Protocol", "PROTOCOLS", "get_protocol"]


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

    @property
    def grid_size(self) -> int | None:
        """The square grid side, or None for native size."""
        return None if self.grid == "native" else int(self.grid.split("x")[0])

    def to_dict(self) -> dict[str, object]:
        """Plain values, for results.json."""
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    "standard": Protocol(
        name="standard", grid="native", map_resize="bilinear (float64) when the size differs",
        mask_resize="none", image_label="folder", image_score="scores.csv, else max of the map as submitted",
        aupro="mvtec"),
    "paper": Protocol(
        name="paper", grid="256x256", map_resize="bilinear (float64) when not 256x256",
        mask_resize="PIL nearest to 256x256, then /255 > 0.5", image_label="resized_mask",
        image_score="scores.csv, else max of the map as submitted", aupro="paper_per_image",
        pro_thresholds=200),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; :class:`UsageError` for an unknown one."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None
