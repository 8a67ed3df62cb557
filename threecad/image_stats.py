"""The statistics pass: per-image and per-region tables for every defective image.

Masks are decoded and labelled in a thread pool (OpenCV releases the GIL while it
decodes PNGs and labels components, so threads scale without copying arrays between
processes). A progress bar goes to the terminal when asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Problem, Severity
from .parallel import thread_map
from .regions import MaskReadError, MaskStats, mask_regions, read_mask
from .schema import Label

__all__ = ["IMAGE_STAT_COLUMNS", "REGION_COLUMNS", "StatsResult", "compute_image_stats"]

log = logging.getLogger(__name__)

# Columns added to the manifest in the per-image table (-1 / NaN for good images).
IMAGE_STAT_COLUMNS = ("n_regions", "anomalous_pixels", "anomalous_fraction")

REGION_COLUMNS = (
    "image_id", "category", "code", "split", "folder", "stem",
    "region", "defect_type", "area", "area_fraction",
    "bbox_x", "bbox_y", "bbox_w", "bbox_h", "size_class",
)


@dataclass
class StatsResult:
    """Per-image table (manifest + statistics), per-region table, and problems met."""

    images: "object"   # pandas.DataFrame
    regions: "object"  # pandas.DataFrame
    problems: list[Problem] = field(default_factory=list)


def _one_image(row: dict) -> tuple[MaskStats | None, list[Problem]]:
    problems: list[Problem] = []
    masks = []
    for path in row["mask_paths"]:
        try:
            masks.append(read_mask(path))
        except MaskReadError as exc:
            problems.append(Problem("unreadable_mask", Path(path), str(exc).split(": ", 1)[-1]))
    if problems or not masks:
        return None, problems
    height = row["height"] if row["height"] > 0 else None
    width = row["width"] if row["width"] > 0 else None
    try:
        stats = mask_regions(masks, row["mask_types"], height=height, width=width)
    except MaskReadError as exc:
        return None, [Problem("mask_size_mismatch", Path(row["mask_paths"][0]), str(exc))]
    odd = [v for v in stats.mask_values if v not in (0, 255)]
    if odd:
        problems.append(Problem("mask_values", Path(row["mask_paths"][0]),
                                f"mask values {list(stats.mask_values)} (expected 0 and 255); "
                                f"every value > 0 counts as defect", Severity.WARNING))
    if stats.n_regions == 0:
        problems.append(Problem("empty_mask", Path(row["mask_paths"][0]),
                                "defective image with an all-zero mask"))
    return stats, problems


def compute_image_stats(manifest: "object", *, workers: int | None = None,
                        progress: bool = False) -> StatsResult:
    """Region statistics of every defective image of a manifest.

    Parameters
    ----------
    manifest : pandas.DataFrame
        From :func:`threecad.manifest.scan`.
    workers : int, optional
        Threads decoding masks (default: the number of CPUs).
    progress : bool
        Show a progress bar on standard error.

    Returns
    -------
    StatsResult
        ``images``: the manifest plus :data:`IMAGE_STAT_COLUMNS`; ``regions``: one row per
        region with :data:`REGION_COLUMNS`.
    """
    import pandas as pd

    defect_rows = manifest[(manifest["label"] == Label.DEFECT) & (manifest["mask_paths"].map(len) > 0)]
    records = defect_rows.to_dict("records")
    results = thread_map(_one_image, records, workers=workers, progress=progress, desc="masks", unit="img")

    problems: list[Problem] = []
    n_regions = {}
    anomalous = {}
    region_rows = []
    for rec, (stats, probs) in zip(records, results):
        problems.extend(probs)
        if stats is None:
            continue
        key = rec["image_id"]
        n_regions[key] = stats.n_regions
        anomalous[key] = stats.anomalous_pixels
        for r in stats.regions:
            region_rows.append({
                "image_id": key, "category": rec["category"], "code": rec["code"],
                "split": rec["split"], "folder": rec["folder"], "stem": rec["stem"],
                "region": r.index, "defect_type": r.defect_type, "area": r.area,
                "area_fraction": r.area_fraction, "bbox_x": r.bbox[0], "bbox_y": r.bbox[1],
                "bbox_w": r.bbox[2], "bbox_h": r.bbox[3], "size_class": r.size_class,
            })

    images = manifest.copy()
    images["n_regions"] = images["image_id"].map(n_regions).fillna(-1).astype("int64")
    images["anomalous_pixels"] = images["image_id"].map(anomalous).fillna(-1).astype("int64")
    pixels = (images["height"] * images["width"]).where(images["height"] > 0)
    images["anomalous_fraction"] = (images["anomalous_pixels"] / pixels).where(images["anomalous_pixels"] >= 0)
    regions = pd.DataFrame(region_rows, columns=list(REGION_COLUMNS))
    return StatsResult(images=images, regions=regions, problems=problems)
