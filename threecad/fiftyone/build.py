"""Samples from the manifest: one FiftyOne sample per image, built or updated incrementally.

Fields of every sample: ``image_id`` (the key), ``category``, ``code``, ``split``, ``label``
(``good``/``defect``), ``folder``, ``stem``, ``defect_types`` (Classifications; ``good`` for
good images), ``ground_truth`` (Segmentation stored as a mask file, mask target
``255: defect``; None for good images), ``ground_truth_outline`` (the same mask as an
outline, for viewing under a heatmap), ``n_regions``, ``regions`` (Detections: one box per
8-connected region, labelled by defect type, its size class as attribute ``size_class`` and
as label tag, with ``area`` and ``area_fraction``), ``height``, ``width``, ``metadata``, ``fingerprint`` (sizes and times
of the image and mask files, to update only what changed) and tags (``good``/``defect``,
the category code, and ``duplicate``/``leakage`` from a validation report when given).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DataError, Problem, UsageError
from ..regions import MaskReadError, mask_regions
from .media import default_media_dir, mask_file, write_png

__all__ = ["DEFECT_VALUE", "MASK_TARGETS", "dataset_name", "BuildReport", "build_dataset", "validation_tags",
           "ground_truth_record"]

log = logging.getLogger(__name__)

DEFECT_VALUE = 255
MASK_TARGETS = {DEFECT_VALUE: "defect"}
SPLITS = ("test", "train", "all")
_DUPLICATE_KINDS = {"duplicate": "duplicate", "near_duplicate": "duplicate",
                    "leakage": "leakage", "near_leakage": "leakage"}


def dataset_name(root: str | Path, split: str) -> str:
    """The default dataset name: ``3cad-<root folder>-<split>-<6 hex of the full path>``."""
    root = Path(root).expanduser().resolve()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", root.name).strip("-") or "root"
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:6]
    return f"3cad-{slug}-{split}-{digest}"


def _fingerprint(row: dict[str, Any]) -> str:
    parts = []
    for p in (row["image_path"], *row["mask_paths"]):
        st = os.stat(p)
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


@dataclass
class GroundTruth:
    """What one image's masks give: the mask file to show, the regions, problems."""

    mask_path: str | None = None
    outline_path: str | None = None
    regions: tuple = ()
    problems: list[Problem] = field(default_factory=list)
    fingerprint: str = ""


def _decode(path: str) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None:
        raise MaskReadError(f"{path}: cannot decode mask (not an image, or truncated)")
    return arr


def ground_truth_record(row: dict[str, Any], media_dir: Path, dataset: str) -> GroundTruth:
    """Read one image's masks: regions, and the mask file to show.

    A single 8-bit grey 0/255 mask is shown as it is (no copy); anything else (several
    masks, other values or channels) is written as the union, 0/255, to the media folder.
    """
    out = GroundTruth(fingerprint=_fingerprint(row))
    if not row["mask_paths"]:
        return out
    masks = []
    raw = []
    try:
        for p in row["mask_paths"]:
            arr = _decode(p)
            raw.append(arr)
            masks.append(arr.max(axis=2) if arr.ndim == 3 else arr)
        stats = mask_regions(masks, row["mask_types"], height=row["height"], width=row["width"])
    except MaskReadError as exc:
        out.problems.append(Problem("bad_mask", Path(row["mask_paths"][0]), str(exc)))
        return out
    out.regions = stats.regions
    union = np.zeros(masks[0].shape, np.uint8)
    for m in masks:
        union[m > 0] = DEFECT_VALUE
    simple = (len(raw) == 1 and raw[0].ndim == 2 and raw[0].dtype == np.uint8
              and set(stats.mask_values) <= {0, DEFECT_VALUE})
    if simple:
        out.mask_path = row["mask_paths"][0]
    else:
        out.mask_path = str(write_png(mask_file(media_dir, dataset, row["image_id"]), union))
    out.outline_path = str(write_png(mask_file(media_dir, dataset, row["image_id"], kind="outlines"),
                                     outline(union)))
    return out


OUTLINE_SIDE = 512  # outlines are drawn at most this large; the app stretches masks to the image


def outline(mask: np.ndarray) -> np.ndarray:
    """The inner border of a 0/255 mask, for display: at most :data:`OUTLINE_SIDE` px on its
    longer side (cheap to encode and load) and about 1/170 of that side thick (at least 2 px),
    so that it stays visible in the app's grid thumbnails. Every region keeps an outline."""
    import cv2

    h, w = mask.shape
    scale = min(1.0, OUTLINE_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        mask = np.where(cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 0, np.uint8(DEFECT_VALUE),
                        np.uint8(0))
    width = max(2, round(max(mask.shape) / 170))
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=width, borderValue=0)
    return np.where((mask > 0) & (inner == 0), np.uint8(DEFECT_VALUE), np.uint8(0))


def validation_tags(report: Any) -> dict[str, set[str]]:
    """``duplicate``/``leakage`` tags by image path, from a validation report.

    ``report`` is a :class:`threecad.validate.ValidationReport` or its JSON form (a dict, as
    written by ``threecad validate --json``).
    """
    problems = report["problems"] if isinstance(report, dict) else [p.to_dict() for p in report.problems]
    root = Path(report["root"] if isinstance(report, dict) else report.root)
    tags: dict[str, set[str]] = {}
    for p in problems:
        tag = _DUPLICATE_KINDS.get(p.get("kind", ""))
        if tag:
            path = Path(p["path"])
            path = path if path.is_absolute() else root / path
            tags.setdefault(str(path.resolve()), set()).add(tag)
    return tags


@dataclass
class BuildReport:
    """What :func:`build_dataset` did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    seconds: float = 0.0

    @property
    def samples(self) -> int:
        """Samples added or rebuilt in this run."""
        return self.added + self.updated


def _sample(fo, row: dict[str, Any], gt: GroundTruth, tags: Iterable[str]):
    h, w = int(row["height"]), int(row["width"])
    defect = row["label"] == "defect"
    detections = []
    for r in gt.regions:
        x, y, bw, bh = r.bbox
        detections.append(fo.Detection(label=r.defect_type, bounding_box=[x / w, y / h, bw / w, bh / h],
                                       tags=[r.size_class], size_class=r.size_class, area=r.area,
                                       area_fraction=r.area_fraction, region=r.index))
    types = list(row["defect_types"]) if defect else ["good"]
    return fo.Sample(
        filepath=row["image_path"],
        tags=[row["label"], row["code"], *sorted(tags)],
        metadata=fo.ImageMetadata(width=w, height=h, num_channels=int(row["channels"]), mime_type="image/png"),
        image_id=row["image_id"], category=row["category"], code=row["code"], split=row["split"],
        label=row["label"], folder=row["folder"], stem=row["stem"], height=h, width=w,
        defect_types=fo.Classifications(classifications=[fo.Classification(label=t) for t in types]),
        ground_truth=fo.Segmentation(mask_path=gt.mask_path) if gt.mask_path else None,
        ground_truth_outline=fo.Segmentation(mask_path=gt.outline_path) if gt.outline_path else None,
        n_regions=len(gt.regions),
        regions=fo.Detections(detections=detections),
        fingerprint=gt.fingerprint,
    )


def select_split(manifest: Any, split: str, root: Path) -> Any:
    """The manifest rows of ``split`` (``all``: every row); UsageError when there are none."""
    if split not in SPLITS:
        raise UsageError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rows = manifest if split == "all" else manifest[manifest["split"] == split]
    if rows.empty:
        raise UsageError(f"{root} has no {'' if split == 'all' else split + ' '}images "
                         f"(expected <Category>/{'test' if split == 'all' else split}/<folder>/*.png)")
    return rows.reset_index(drop=True)


def build_dataset(fo, dataset, manifest: Any, *, categories: Sequence[str], media_dir: Path | None = None,
                  validation: Any = None, workers: int | None = None, progress: bool = False,
                  batch_size: int = 1000) -> BuildReport:
    """Add the manifest's images to ``dataset``, or update it: one sample per ``image_id``.

    Samples whose files did not change are kept as they are; changed ones are rebuilt;
    samples of ``categories`` (folder names) that are no longer in the manifest are removed.
    Masks are read in ``workers`` threads; samples are added in batches.

    Raises
    ------
    DataError
        A mask cannot be read or does not match its image (every such problem is listed).
    """
    import time

    from ..parallel import thread_map

    start = time.perf_counter()
    media_dir = Path(media_dir) if media_dir is not None else default_media_dir()
    report = BuildReport()
    existing: dict[str, str] = {}
    if len(dataset):
        ids, fps = dataset.values(["image_id", "fingerprint"])
        existing = dict(zip(ids, fps))
    rows = manifest.to_dict("records")
    wanted = {r["image_id"] for r in rows}
    stale = [iid for iid in existing if iid.split("/", 1)[0] in set(categories) and iid not in wanted]

    todo = []
    for r in rows:
        old = existing.get(r["image_id"])
        if old is not None and old == _fingerprint(r):
            report.unchanged += 1
        else:
            todo.append(r)
    replaced = [r["image_id"] for r in todo if r["image_id"] in existing]
    tags = validation_tags(validation) if validation is not None else {}

    name = dataset.name
    gts = thread_map(lambda r: ground_truth_record(r, media_dir, name), todo, workers=workers,
                     progress=progress, desc="masks", unit="img")
    problems = [p for g in gts for p in g.problems]
    if problems:
        raise DataError(f"{len(problems)} mask(s) cannot be used", problems)

    delete = stale + replaced
    if delete:
        dataset.delete_samples(dataset.select_by("image_id", delete))
    report.removed = len(stale)
    report.updated = len(replaced)
    report.added = len(todo) - len(replaced)
    for i in range(0, len(todo), batch_size):
        batch = [_sample(fo, r, g, tags.get(str(Path(r["image_path"]).resolve()), ()))
                 for r, g in zip(todo[i:i + batch_size], gts[i:i + batch_size])]
        dataset.add_samples(batch, progress=False, validate=False)  # built here, always valid
    if tags and report.unchanged:  # refresh the flags of samples that were kept
        rebuilt = {t["image_id"] for t in todo}
        keep = [r for r in rows if r["image_id"] not in rebuilt]
        values = {r["image_id"]: [r["label"], r["code"],
                                  *sorted(tags.get(str(Path(r["image_path"]).resolve()), ()))] for r in keep}
        dataset.set_values("tags", values, key_field="image_id")
    report.seconds = time.perf_counter() - start
    log.info("dataset %s: %d added, %d rebuilt, %d unchanged, %d removed in %.1f s", name, report.added,
             report.updated, report.unchanged, report.removed, report.seconds)
    return report
