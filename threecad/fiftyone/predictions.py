"""A submission in the dataset: heatmap files on a shared scale, and per-sample results.

For a submission whose method is ``M`` (``submission.json``, else the folder name), with
``<p>`` = :func:`field_prefix` of ``M`` (``M`` as a field name when that is at most 14
characters, e.g. ``synthetic_demo``; else its first 9 characters and 4 hex digits of a hash
of ``M``, e.g. ``patchknn_1f3a``, so that two long names never read alike), every test
sample of the categories it covers gets:

``<p>_heatmap``
    Heatmap stored as a file: the map as submitted (its own resolution), as 8-bit PNG on
    the category's shared scale, ``range`` ``[0, 255]``; ``value_min``/``value_max`` give the
    scale in map units. The scale of a category runs from the median of its normal pixels
    (so that half of the normal surface is fully transparent) to the 99.9th percentile of
    all its maps' values (pooled over every test image of the category, from a strided
    sample of up to 4096 values per map); values outside are clipped. It is never per
    image: equal colours mean equal scores within a category.
``<p>_score``
    The image score (``scores.csv``, else the maximum of the map), as ``threecad eval``.
``<p>_pro``
    The 3CAD authors' per-image PRO (the ``paper`` protocol's, from :mod:`eval.evaluate`);
    None for good images.
``<p>_max_normal``
    The highest score on the image's normal pixels (standard protocol grid: native size).
``<p>_regions``
    The ground-truth regions (boxes labelled by defect type), each with ``coverage`` (the
    fraction of its pixels above the category's 1 % FPR threshold: the 99th percentile of
    the normal pixels of the category's test images, to 1 % precision), ``max_score`` and
    ``missed``; ``<p>_missed`` counts the regions with ``coverage`` below
    :data:`MISSED_COVERAGE`.
``<p>_scale``
    The colour-scale note of the heatmap, e.g. ``ACC heatmap: clear <= 0.12, full >= 0.87;
    1 % FPR at 0.55`` (also in the fields' descriptions, with the method's full name).

The work is cached by the submission's fingerprint (:func:`submission_digest`: the method,
every map's and ``scores.csv``'s size and modification time, and the ground-truth
fingerprints of the samples): adding the same submission again to a dataset that has its
fields and heatmap files only checks that (``PredictionReport.cached``).

The scoring engine's functions are reused (:func:`eval.evaluate.image_truth`,
:func:`eval.evaluate.score_image`, :func:`eval.evaluate.map_on_grid`); nothing is
re-implemented here but the per-region summary.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from .media import heatmap_file, quantize, write_png

__all__ = ["MISSED_COVERAGE", "SCALE_PERCENTILES", "FPR_QUANTILE", "PredictionReport", "field_prefix",
           "add_predictions", "submission_digest", "scale_note"]

log = logging.getLogger(__name__)

MISSED_COVERAGE = 0.1           # a region is missed when < 10 % of its pixels pass the 1 % FPR threshold
SCALE_PERCENTILES = (50.0, 99.9)  # the category's heatmap scale: median normal pixel .. 99.9th pct of all
FPR_QUANTILE = 0.99             # the category's normal-pixel quantile used as threshold (1 % FPR)
_SAMPLE_PER_MAP = 4096
_QUANTILES = np.linspace(0.0, 1.0, 101)
PREFIX_MAX = 14                 # longer slugs are cut and told apart by a hash
_CACHE_VERSION = 1              # bump when the fields' contents change


def field_prefix(method: str) -> str:
    """A short field-name prefix for a method name (lower-case letters, digits, ``_``; not
    starting with a digit; at most :data:`PREFIX_MAX` characters).

    A longer slug keeps its first 9 characters and gets 4 hex digits of the sha1 of the full
    name: ``patchknn_training_free_baseline`` -> ``patchknn_`` + hash, unambiguous in the app's
    sidebar where long names are cut.
    """
    p = re.sub(r"[^A-Za-z0-9]+", "_", method).strip("_").lower() or "preds"
    p = p if not p[0].isdigit() else f"m_{p}"
    if len(p) <= PREFIX_MAX:
        return p
    digest = hashlib.sha1(method.encode("utf-8")).hexdigest()[:4]
    return f"{p[:9].rstrip('_')}_{digest}"


def scale_note(code: str, scale: dict[str, float]) -> str:
    """The colour-scale note of a category's heatmaps (see the module doc)."""
    return (f"{code} heatmap: clear <= {scale['value_min']:.4g}, full >= {scale['value_max']:.4g}; "
            f"1 % FPR at {scale['threshold_fpr_1pct']:.4g}")


def submission_digest(submission: Any, rows: Sequence[dict[str, Any]], fingerprints: dict[str, str]) -> str:
    """sha256 of what the fields of a submission depend on: the method, every map's (and
    ``scores.csv``'s) size and modification time, and each sample's ground-truth fingerprint."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}\t{submission.meta.method}\n".encode())
    extra = Path(submission.root) / "scores.csv"
    for row in sorted(rows, key=lambda r: r["image_id"]):
        st = os.stat(submission.maps[row["image_id"]])
        h.update(f"{row['image_id']}\t{st.st_size}:{st.st_mtime_ns}\t{fingerprints.get(row['image_id'])}\n".encode())
    if extra.is_file():
        st = extra.stat()
        h.update(f"scores.csv\t{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cached(dataset, prefix: str, digest: str, ids: list[str]) -> bool:
    """Whether ``dataset`` holds the fields of this exact submission, heatmap files included."""
    known = ((dataset.info or {}).get("predictions") or {}).get(prefix) or {}
    if known.get("digest") != digest or f"{prefix}_scale" not in dataset.get_field_schema():
        return False
    view = dataset.select_by("image_id", ids)
    paths = view.values(f"{prefix}_heatmap.map_path")
    return len(paths) == len(ids) and all(p and os.path.isfile(p) for p in paths)


def _forget_digest(dataset, prefix: str) -> None:
    info = dict(dataset.info or {})
    known = (info.get("predictions") or {}).get(prefix)
    if known and known.get("digest"):
        known["digest"] = None
        dataset.info = info
        dataset.save()


def _describe(dataset, prefix: str, method: str, scales: dict[str, dict[str, float]]) -> None:
    """Field descriptions (shown by the app): the method's full name and the heatmap scale."""
    notes = "; ".join(scale_note(code, sc) for code, sc in scales.items())
    texts = {
        "heatmap": f"{method}: anomaly map, green opacity from the category's median normal score (clear) to "
                   f"its 99.9th percentile (full). {notes}",
        "score": f"{method}: image score", "pro": f"{method}: per-image PRO (3CAD authors' protocol)",
        "max_normal": f"{method}: highest score on normal pixels",
        "regions": f"{method}: ground-truth regions by defect type, with coverage above the 1 % FPR threshold; "
                   f"missed when coverage < {MISSED_COVERAGE}",
        "missed": f"{method}: regions missed", "scale": f"{method}: heatmap colour scale of the sample's category",
    }
    for suffix, text in texts.items():
        field = dataset.get_field(f"{prefix}_{suffix}")
        if field is not None:
            field.description = text
            field.save()


@dataclass
class _Measured:
    """Pass 1 of one image."""

    image_id: str
    code: str
    score: float
    pro: float | None
    max_normal: float | None
    sample: np.ndarray             # strided values of the map as submitted (scale)
    normal_sample: np.ndarray      # strided normal-pixel values on the grid (threshold)
    region_quantiles: list[np.ndarray] = field(default_factory=list)
    region_max: list[float] = field(default_factory=list)


@dataclass
class PredictionReport:
    """What :func:`add_predictions` did: field prefix, method, images, per-category scales."""

    prefix: str
    method: str
    images: int
    scales: dict[str, dict[str, float]]
    seconds: float
    cached: bool = False


def _strided(a: np.ndarray, n: int) -> np.ndarray:
    flat = np.asarray(a).reshape(-1)
    step = max(1, flat.size // n)
    return np.asarray(flat[::step][:n], dtype=np.float64)


def _measure(row: dict[str, Any], path: Path, score: float | None) -> _Measured:
    from threecad.eval.evaluate import image_truth, map_on_grid, score_image, truth_mask
    from threecad.eval.mapio import read_map
    from threecad.eval.protocols import get_protocol

    from ..errors import DataError
    from ..regions import label_regions

    standard, paper = get_protocol("standard"), get_protocol("paper")
    amap = read_map(path)
    truth = image_truth(row, standard)
    if truth.problem is not None:
        raise DataError(f"{row['image_id']}: {truth.problem.message}", [truth.problem])
    gt = truth_mask(truth).astype(bool)
    grid = np.asarray(map_on_grid(amap, truth.shape, standard))
    value = float(score) if score is not None else float(amap.max())
    pro = None
    if truth.defect:
        ptruth = image_truth(row, paper)
        if ptruth.problem is None:
            scored, _ = score_image(amap, ptruth, score, "", paper)
            pro = None if math.isnan(scored.pro_paper) else float(scored.pro_paper)
    flat_gt = gt.reshape(-1)
    # normal pixels: a strided sample (positions on defects dropped), and the maximum, taken
    # with the few defect pixels set to -inf in a copy (cheaper than indexing every normal pixel)
    step = max(1, flat_gt.size // _SAMPLE_PER_MAP)
    picks = np.arange(0, flat_gt.size, step)
    normal_sample = np.asarray(grid.reshape(-1)[picks[~flat_gt[picks]]], dtype=np.float64)
    vals = None
    if gt.any():
        labels, stats = label_regions(gt)
        ys, xs = np.nonzero(gt)
        vals = grid[ys, xs].astype(np.float64)
    if gt.all():
        max_normal = None
    elif vals is None:
        max_normal = float(grid.max())
    else:
        masked = np.array(grid, dtype=np.float64, copy=True)
        masked[ys, xs] = -np.inf
        max_normal = float(masked.max())
    m = _Measured(row["image_id"], row["code"], value, pro, max_normal, _strided(amap, _SAMPLE_PER_MAP),
                  normal_sample)
    if vals is not None:
        lab = labels[ys, xs] - 1
        order = np.argsort(lab, kind="stable")
        bounds = np.cumsum(np.bincount(lab, minlength=len(stats)))[:-1]
        for part in np.split(vals[order], bounds):
            m.region_quantiles.append(np.quantile(part, _QUANTILES))
            m.region_max.append(float(part.max()))
    return m


def _coverage(quantiles: np.ndarray, threshold: float) -> float:
    """Fraction of a region's pixels above ``threshold``, from its 101 quantiles (1 % steps)."""
    below = int(np.searchsorted(quantiles, threshold, side="right"))
    return round(max(0.0, 1.0 - below / (len(quantiles) - 1)), 2)


def add_predictions(fo, dataset, manifest: Any, preds: str | Path, *, media_dir: Path,
                    categories: Sequence[str] | None = None, workers: int | None = None,
                    progress: bool = False, taken: Sequence[str] = ()) -> PredictionReport:
    """Add one submission to ``dataset`` (see the module doc for the fields).

    Raises
    ------
    UsageError
        ``preds`` is not a folder, or its field prefix is already used by another submission.
    eval.submission.SubmissionError
        The submission does not fit the dataset (maps for other images, missing maps, ...):
        every problem is listed.
    """
    import time

    from threecad.eval.mapio import MapReadError, read_map
    from threecad.eval.submission import SubmissionError, load_submission

    from ..parallel import thread_map

    start = time.perf_counter()
    preds = Path(preds)
    if not preds.is_dir():
        raise UsageError(f"{preds} is not a submission folder (<Category>/test/<folder>/<stem>.npy ...)")
    test = manifest[manifest["split"] == "test"]
    if test.empty:
        raise UsageError("predictions need test images; the dataset has none (use --split test or all)")
    try:
        submission = load_submission(preds, test, categories=categories)
    except SubmissionError as exc:
        kinds = {p.kind for p in exc.problems}
        hint = (" (predictions for another dataset, or another release of it?)"
                if kinds & {"extra_map", "unknown_category"} else "")
        raise SubmissionError(f"{preds} does not fit the test images of this dataset{hint}; nothing was added",
                              exc.problems) from None
    prefix = field_prefix(submission.meta.method)
    if prefix in taken:
        raise UsageError(f"two submissions give the field name {prefix!r} (method {submission.meta.method!r}); "
                         f"give one another 'method' in its submission.json")
    rows = test[test["image_id"].isin(submission.maps)].to_dict("records")
    ids = [r["image_id"] for r in rows]
    fingerprints = dict(zip(*dataset.select_by("image_id", ids).values(["image_id", "fingerprint"])))
    digest = submission_digest(submission, rows, fingerprints)
    if _cached(dataset, prefix, digest, ids):
        scales = dataset.info["predictions"][prefix]["scales"]
        seconds = time.perf_counter() - start
        log.info("%s: %d maps already in the dataset as %s_* (same submission)", submission.meta.method, len(rows),
                 prefix)
        return PredictionReport(prefix, submission.meta.method, len(rows), scales, seconds, cached=True)
    _forget_digest(dataset, prefix)  # an interrupted update must not pass for a complete one
    scores = submission.scores

    def measure(row):
        try:
            return _measure(row, submission.maps[row["image_id"]],
                            scores[row["image_id"]] if scores is not None else None)
        except MapReadError as exc:
            from ..errors import Problem

            raise SubmissionError(f"{preds}: a map cannot be used", [Problem(exc.kind, exc.path, exc.message)]) \
                from None

    measured = thread_map(measure, rows, workers=workers, progress=progress, desc=f"{prefix} read", unit="map")

    scales: dict[str, dict[str, float]] = {}
    for code in dict.fromkeys(m.code for m in measured):
        ms = [m for m in measured if m.code == code]
        pooled = np.concatenate([m.sample for m in ms])
        normal = np.concatenate([m.normal_sample for m in ms])
        lo = float(np.percentile(normal, SCALE_PERCENTILES[0])) if normal.size else float(pooled.min())
        hi = float(np.percentile(pooled, SCALE_PERCENTILES[1]))
        if not hi > lo:
            lo, hi = float(pooled.min()), float(pooled.max())
        threshold = float(np.quantile(normal, FPR_QUANTILE)) if normal.size else float("inf")
        scales[code] = {"value_min": lo, "value_max": hi, "threshold_fpr_1pct": threshold}

    heat_field = f"{prefix}_heatmap"
    name = dataset.name

    def write(row):
        scale = scales[row["code"]]
        target = heatmap_file(media_dir, name, heat_field, row["image_id"])
        write_png(target, quantize(read_map(submission.maps[row["image_id"]]), scale["value_min"],
                                   scale["value_max"]))
        return str(target)

    paths = thread_map(write, rows, workers=workers, progress=progress, desc=f"{prefix} heatmaps", unit="map")

    heatmaps, score_v, pro_v, normal_v, regions_v, missed_v, scale_v = {}, {}, {}, {}, {}, {}, {}
    region_boxes = dict(zip(*dataset.select_by("image_id", [r["image_id"] for r in rows])
                            .values(["image_id", "regions.detections"])))
    for row, m, path in zip(rows, measured, paths):
        scale = scales[m.code]
        iid = m.image_id
        heatmaps[iid] = fo.Heatmap(map_path=path, range=[0, 255], value_min=scale["value_min"],
                                   value_max=scale["value_max"])
        score_v[iid] = m.score
        pro_v[iid] = m.pro
        normal_v[iid] = m.max_normal
        dets = []
        boxes = region_boxes.get(iid) or []
        for k, (q, mx) in enumerate(zip(m.region_quantiles, m.region_max)):
            box = boxes[k] if k < len(boxes) else None
            cov = _coverage(q, scale["threshold_fpr_1pct"])
            dets.append(fo.Detection(label=box.label if box else "defect",
                                     bounding_box=list(box.bounding_box) if box else [0, 0, 0, 0],
                                     size_class=getattr(box, "size_class", None) if box else None,
                                     coverage=cov, max_score=mx, missed=cov < MISSED_COVERAGE))
        regions_v[iid] = fo.Detections(detections=dets)
        missed_v[iid] = sum(1 for d in dets if d["missed"])
        scale_v[iid] = scale_note(m.code, scale)
    for suffix, values in (("heatmap", heatmaps), ("score", score_v), ("pro", pro_v), ("max_normal", normal_v),
                           ("regions", regions_v), ("missed", missed_v), ("scale", scale_v)):
        dataset.set_values(f"{prefix}_{suffix}", values, key_field="image_id")
    _describe(dataset, prefix, submission.meta.method, scales)
    info = dict(dataset.info or {})
    info.setdefault("predictions", {})[prefix] = {"method": submission.meta.method, "path": str(submission.root),
                                                  "scales": scales, "digest": digest}
    dataset.info = info
    dataset.save()
    seconds = time.perf_counter() - start
    log.info("%s: %d maps added as %s_* in %.1f s", submission.meta.method, len(rows), prefix, seconds)
    return PredictionReport(prefix, submission.meta.method, len(rows), scales, seconds)
