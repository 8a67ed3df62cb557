"""Scoring a submission: evaluate (two passes per category), then summarize.

Pass 1 reads every map and mask once (threads), checks the map, brings both onto the
protocol's grid, keeps the anomalous pixels (:class:`eval.pixels.PixelStats`), the image
score and label, and (``paper``) the authors' per-image PRO. Every problem of every
category is collected first: if there is any, :class:`SubmissionError` lists them all and
nothing is scored. Pass 2 reads the maps again and counts their normal pixels; the
counts are integers, so threads and order do not change the result.

Masks are decoded once: pass 1 keeps the anomalous pixels' flat indices, which is all
pass 2 needs of the ground truth. Maps are kept between the passes within a fixed budget
(each as read or on the grid, whichever is smaller) and brought onto the grid again by the
same deterministic rule; the rest are read again. (Keeping the resized maps instead would
take 4 or 8 bytes per native pixel, gigabytes per category; resizing a 256x256 map again
costs about 1 ns per native pixel in float32 (:mod:`eval.resize`), a few % of pass 2,
measured with scripts/bench_eval_full.py --native.) Pass 2 runs in order of group, so the
pixel statistics hold one group's normal counts per thread (:class:`eval.pixels.PixelStats`).
Then the category's breakdowns and its metrics are
computed (``CategoryEvaluation.summary``). Every phase (read, sort, count, metrics) has its
progress bar, and its wall time is kept in ``CategoryEvaluation.seconds``.

The protocol's settings drive the ground truth: the grid, which masks are read (the union,
or the image's own-folder mask for ``paper``), the region connectivity and the size
classes (:func:`truth_positives`), the image label and the image score rule.

The work on one image is split in two pieces shared with the Dask path
(:mod:`eval.distributed`), so that both give bit-identical results:

* :func:`image_truth` -- the ground truth on the protocol grid (masks read, regions,
  PRO weights, size classes, label, mask digests); it does not depend on the submission.
* :func:`score_image` -- one map against that truth (order keys of the anomalous
  pixels, image score, the paper's per-image PRO).

:class:`CategoryBuilder` adds the images of a category, in manifest order, into a
:class:`CategoryEvaluation`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from threecad.categories import get_category
from threecad.errors import Problem
from threecad.regions import MaskReadError, decode_mask

from .engine import order_keys
from .heap import return_freed_memory
from .mapio import MapReadError, read_map, read_map_digest
from .metrics import average_precision, roc_auc
from .paper import mean_pro_paper, per_image_pro_paper, resize_map_paper, resize_mask_paper
from .pixels import ImagePositives, NegativeTally, PixelStats
from .protocols import IMAGE_LABEL_FOLDER, IMAGE_SCORE_AS_SUBMITTED, Protocol
from .resize import resize_to_grid, values_on_grid
from .submission import Submission, SubmissionError

__all__ = ["ImageRecord", "CategoryEvaluation", "evaluate_submission", "summarize_category", "read_category",
           "count_category", "summarize_counted",
           "ground_truth_digest", "ImageTruth", "ImageScore", "image_truth", "score_image", "map_on_grid",
           "CategoryBuilder", "submission_error", "pass1_image", "image_keys", "ImageObserver",
           "category_truths", "evaluate_category", "truth_positives", "own_folder_mask", "type_breakdowns"]

log = logging.getLogger(__name__)

from .metric_names import METRICS  # noqa: E402  (one list of metric names)

_NO_KEYS = np.zeros(0, np.uint64)

DEFAULT_CACHE_BYTES = 128 << 20
"""Bytes of maps a category keeps from pass 1 to pass 2 (see :func:`evaluate_submission`).
Reading a 256x256 map again costs about 0.6 ms, under 1 % of a native-size category's
time; 128 MiB rather than more keeps the peak of a large category lower (measured with
scripts/bench_eval_full.py --native at full scale)."""


@dataclass
class ImageRecord:
    """Per-image results, keyed by ``image_id`` (COCO style)."""

    image_id: str
    folder: str
    types: tuple[str, ...]
    group: int
    score: float
    label: int                 # the label the image metrics use (protocol-dependent)
    n_regions: int
    n_pixels: int
    shape: tuple[int, int]     # the protocol grid of this image
    pro_paper: float = float("nan")
    map_sha256: str = ""
    mask_sha256: tuple[str, ...] = ()
    flat_positive: np.ndarray | None = field(default=None, repr=False)


@dataclass
class CategoryEvaluation:
    """Everything evaluated for one category, before summarizing."""

    category: str
    code: str
    records: list[ImageRecord]
    pixels: PixelStats
    groups: dict[tuple[str, ...], int]
    problems: list[Problem] = field(default_factory=list)
    summary: dict[str, Any] | None = field(default=None, repr=False)
    """The category's results, once computed (:func:`summarize_category`)."""
    seconds: dict[str, float] = field(default_factory=dict, repr=False)
    """Wall seconds of each phase (``read``, ``sort``, ``count``, ``metrics``), when timed."""


@dataclass
class ImageTruth:
    """The ground truth of one test image on a protocol's grid (no submission involved).

    ``positives`` holds the anomalous pixels' flat indices, PRO weights and size classes
    (its ``keys`` are empty: they come from a map, see :func:`score_image`). ``problem``
    is set (and ``positives`` is None) when the ground truth cannot be used.
    """

    image_id: str
    folder: str
    types: tuple[str, ...]
    defect: bool
    shape: tuple[int, int]       # the protocol grid of this image
    label: int                   # the label the image metrics use (protocol-dependent)
    positives: ImagePositives | None
    mask_sha256: tuple[str, ...] = ()
    problem: Problem | None = None


@dataclass
class ImageScore:
    """What one map adds to its ground truth: score, digest, PRO (paper) and the scores of
    its anomalous pixels on the grid, as stored (in the order of
    ``ImageTruth.positives.flat_index``; :func:`eval.engine.order_keys` makes them keys)."""

    image_id: str
    score: float
    map_sha256: str
    shape: tuple[int, int]
    pro_paper: float
    values: np.ndarray


def _read_masks(paths: Sequence[str]) -> tuple[np.ndarray | None, tuple[str, ...], str | None]:
    """Union (uint8 0/255) of an image's masks, their sha256, or an error text."""
    union = None
    digests = []
    for p in paths:
        raw, digest, err = _read_raw_mask(p)
        digests.append(digest)
        if err:
            return None, tuple(digests), err
        m = raw > 0
        if union is not None and union.shape != m.shape:
            return None, tuple(digests), f"masks of one image differ in size ({p})"
        union = m if union is None else union | m
    return (None if union is None else union.astype(np.uint8) * 255), tuple(digests), None


def _read_raw_mask(path: str) -> tuple[np.ndarray | None, str, str | None]:
    """One mask file decoded once (values as stored), its sha256, or an error text."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        return decode_mask(data, path, compiled=True), digest, None
    except MaskReadError:
        return None, digest, f"cannot decode mask {path}"


def own_folder_mask(row: dict[str, Any]) -> str | None:
    """The mask the 3CAD authors' loader reads for a row: ``ground_truth/<folder>/<stem>.*``.

    Their dataset class builds one mask path from the image's own folder and file name, so
    a mask filed under another defect type's folder is never read by their code. None when
    the tree has no such file.
    """
    for p in row["mask_paths"]:
        path = Path(p)
        if path.parent.name == row["folder"] and path.stem == row["stem"]:
            return p
    return None


def truth_positives(mask: np.ndarray, protocol: Protocol) -> ImagePositives:
    """The anomalous pixels of a ground truth on the grid, with their regions (no scores yet).

    Regions are the connected components of ``mask > 0`` under the protocol's
    :attr:`~eval.protocols.Protocol.connectivity`; each pixel's PRO weight is ``1 / area``
    of its region and its size class comes from :meth:`~eval.protocols.Protocol.size_classes`.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Ground truth on the grid; non-zero = anomalous.
    protocol : Protocol

    Returns
    -------
    ImagePositives
        ``flat_index`` (p,) int64, ``keys`` empty (they come with a map), ``weights`` (p,)
        float64, ``size_class`` (p,) int8, region counts.
    """
    import cv2

    binary = np.ascontiguousarray(np.asarray(mask) > 0)
    flat_index = np.flatnonzero(binary.reshape(-1))
    if flat_index.size == 0:
        return ImagePositives(flat_index, _NO_KEYS, np.zeros(0), np.zeros(0, np.int8), 0, (0, 0, 0))
    n, labels = cv2.connectedComponents(binary.view(np.uint8), connectivity=protocol.connectivity,
                                        ltype=cv2.CV_32S)
    lab = labels.reshape(-1)[flat_index] - 1
    areas = np.bincount(lab, minlength=n - 1)
    region_cls = protocol.size_classes(areas)
    per_class = np.bincount(region_cls, minlength=3)
    return ImagePositives(
        flat_index=flat_index, keys=_NO_KEYS, weights=1.0 / areas[lab].astype(np.float64),
        size_class=region_cls[lab], n_regions=int(areas.size),
        regions_per_class=(int(per_class[0]), int(per_class[1]), int(per_class[2])))


def map_on_grid(amap: np.ndarray, shape: tuple[int, int], protocol: Protocol) -> np.ndarray:
    """A map brought onto the protocol grid ``shape`` (see :mod:`eval.protocols`)."""
    if protocol.grid_size is None:
        return resize_to_grid(amap, shape)
    return resize_map_paper(amap, size=protocol.grid_size)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def image_truth(row: dict[str, Any], protocol: Protocol) -> ImageTruth:
    """The ground truth of one manifest row on ``protocol``'s grid (reads its masks once).

    ``standard`` uses the union of every mask of the image, at native size. ``paper`` reads
    only the mask in the image's own folder (:func:`own_folder_mask`), with its stored
    values, as the authors' loader does (:func:`eval.paper.resize_mask_paper`).

    A problem with the masks (unreadable, no mask for a defective image, masks of another
    size than the image) is returned in ``problem``, not raised.
    """
    defect = row["label"] == "defect"
    types = tuple(sorted(row["defect_types"])) if defect else ()
    grid = protocol.grid_size
    shape = (int(row["height"]), int(row["width"])) if grid is None else (grid, grid)

    def bad(path: Path, message: str) -> ImageTruth:
        return ImageTruth(row["image_id"], row["folder"], types, defect, shape, int(defect), None,
                          problem=Problem("bad_ground_truth", path, message))

    mask = None
    mask_digests: tuple[str, ...] = ()
    if defect and grid is None:
        mask, mask_digests, err = _read_masks(row["mask_paths"])
        if err:
            return bad(Path(row["mask_paths"][0]) if row["mask_paths"] else Path(row["image_path"]), err)
        if mask is None:
            return bad(Path(row["image_path"]), "defective image has no mask")
    elif defect:
        own = own_folder_mask(row)
        if own is None:
            return bad(Path(row["image_path"]),
                       f"the {protocol.name} protocol reads only ground_truth/{row['folder']}/"
                       f"{row['stem']}.png (the authors' loader), and there is no such mask")
        mask, digest, err = _read_raw_mask(own)
        if err:
            return bad(Path(own), err)
        mask_digests = (digest,)
    if grid is None:
        if mask is not None and mask.shape != shape:
            return bad(Path(row["mask_paths"][0]),
                       f"mask is {mask.shape[0]}x{mask.shape[1]}, image {shape[0]}x{shape[1]}")
        gt = mask if mask is not None else np.zeros(shape, np.uint8)
    else:
        gt = resize_mask_paper(mask, size=grid, image_id=row["image_id"]) if mask is not None \
            else np.zeros((grid, grid), bool)
    positives = truth_positives(gt, protocol)
    label = int(defect) if protocol.image_label == IMAGE_LABEL_FOLDER else int(positives.flat_index.size > 0)
    return ImageTruth(row["image_id"], row["folder"], types, defect, shape, label, positives, mask_digests)


def truth_mask(truth: ImageTruth) -> np.ndarray:
    """The binarised ground truth (uint8 0/1) on the grid, rebuilt from the flat indices."""
    gt = np.zeros(truth.shape[0] * truth.shape[1], np.uint8)
    gt[truth.positives.flat_index] = 1
    return gt.reshape(truth.shape)


def score_image(amap: np.ndarray, truth: ImageTruth, score: float | None, map_sha256: str,
                protocol: Protocol) -> tuple[ImageScore, np.ndarray | None]:
    """One valid map against its ground truth; returns the result and the map on the grid.

    ``score`` is the image score from scores.csv, or None for the maximum of the map: as
    submitted (``standard``), or on the grid (``paper``: the authors take the maximum of
    their 256x256 map).

    Under ``standard`` a map no larger than its grid is not resized whole here: pass 1
    needs only its anomalous pixels' values (:func:`eval.resize.values_on_grid`, the same
    numbers), and the map on the grid is returned as None (pass 2 resizes it).
    """
    flat_index = truth.positives.flat_index
    on_grid = None
    whole_needed = (protocol.grid_size is not None or protocol.aupro == "paper_per_image"
                    or (score is None and protocol.image_score != IMAGE_SCORE_AS_SUBMITTED)
                    or amap.size > truth.shape[0] * truth.shape[1])  # a smaller grid: keep that
    if not whole_needed:
        values = values_on_grid(amap, truth.shape, flat_index)
        shape = truth.shape
    else:
        on_grid = map_on_grid(amap, truth.shape, protocol)
        values = np.asarray(on_grid).reshape(-1)[flat_index]
        shape = on_grid.shape
    pro = float("nan")
    if protocol.aupro == "paper_per_image" and truth.defect:
        pro = per_image_pro_paper(on_grid, truth_mask(truth), n_thresholds=protocol.pro_thresholds or 200,
                                  fpr_limit=protocol.fpr_limit, connectivity=protocol.connectivity,
                                  image_id=truth.image_id)
    if score is not None:
        value = float(score)
    else:
        value = float((amap if protocol.image_score == IMAGE_SCORE_AS_SUBMITTED else on_grid).max())
    return ImageScore(truth.image_id, value, map_sha256, (int(shape[0]), int(shape[1])), pro, values), on_grid


def image_keys(result: ImageScore) -> np.ndarray:
    """Order keys of an image's anomalous pixels (as :func:`eval.pixels.extract_positives`)."""
    return order_keys(result.values) if result.values.size else _NO_KEYS


def _flat_stub(n: int) -> np.ndarray:
    """A stand-in for flat indices that were not shipped (only their count is used)."""
    return np.broadcast_to(np.int64(0), (n,))


class CategoryBuilder:
    """Adds the images of one category, in manifest order, into a :class:`CategoryEvaluation`.

    Group ids are given in order of first appearance, so the same images in the same
    order give the same evaluation whoever computed their pieces.
    """

    def __init__(self, folder: str) -> None:
        cat = get_category(folder)
        self.evaluation = CategoryEvaluation(folder, cat.code, [], PixelStats(), {(): 0})

    def group_of(self, truth: ImageTruth) -> int:
        """The group id of an image's defect-type set (assigned on first use)."""
        groups = self.evaluation.groups
        return groups.setdefault(truth.types, len(groups))

    def add(self, truth: ImageTruth, result: ImageScore, *, keys: np.ndarray | None = None,
            keep_flat: bool = True) -> ImageRecord:
        """Add one scored image; ``keep_flat`` keeps its flat indices for pass 2 in this process.

        ``keys`` are :func:`image_keys` of ``result`` when already computed (in a thread).
        """
        pos = truth.positives
        assert pos is not None
        if keys is None:
            keys = image_keys(result)
        flat = pos.flat_index if pos.flat_index.size == keys.size else _flat_stub(keys.size)
        group = self.group_of(truth)
        self.evaluation.pixels.add_positives(
            ImagePositives(flat, keys, pos.weights, pos.size_class, pos.n_regions, pos.regions_per_class),
            group=group)
        shape = result.shape
        rec = ImageRecord(
            image_id=truth.image_id, folder=truth.folder, types=truth.types, group=group,
            score=result.score, label=truth.label, n_regions=pos.n_regions,
            n_pixels=shape[0] * shape[1], shape=shape, pro_paper=result.pro_paper,
            map_sha256=result.map_sha256, mask_sha256=truth.mask_sha256,
            flat_positive=pos.flat_index if keep_flat else None)
        self.evaluation.records.append(rec)
        return rec


def submission_error(submission: Submission, problems: list[Problem]) -> SubmissionError:
    """The error listing every content problem found while scoring (nothing is scored)."""
    return SubmissionError(f"{submission.root}: the submission has problems "
                           f"({len(problems)}); nothing was scored", problems)


class _Pass1:
    """Pass 1 over one image (runs in a worker thread)."""

    def __init__(self, protocol: Protocol, submission: Submission) -> None:
        self.protocol = protocol
        self.submission = submission

    def __call__(self, item: tuple[dict[str, Any], ImageTruth | None]):
        row, known = item
        image_id = row["image_id"]
        score = self.submission.scores[image_id] if self.submission.scores is not None else None
        truth = known if known is not None else (lambda: image_truth(row, self.protocol))
        result, problems = _pass1_image(self.submission.maps[image_id], truth, score, self.protocol)
        if result is None:
            return None, problems
        truth, scored, on_grid, amap = result
        # what pass 2 needs of the map: the smaller of the map as read and the map on the grid
        keep = amap if on_grid is None or amap.nbytes < on_grid.nbytes else on_grid
        return (truth, scored, keep, image_keys(scored)), problems  # keys computed in this thread


def pass1_image(path: Path, truth: ImageTruth | Callable[[], ImageTruth], score: float | None,
                protocol: Protocol):
    """Pass 1 of one image: ``((truth, result, map on grid), [])`` or ``(None, [problem])``.

    The map is read first: an unreadable or invalid map is its image's problem, before
    any problem of the ground truth. ``truth`` may be a callable, called only then (the
    masks are not read for an image whose map is unusable).
    """
    result, problems = _pass1_image(path, truth, score, protocol)
    return (None if result is None else result[:3]), problems


def _pass1_image(path: Path, truth: ImageTruth | Callable[[], ImageTruth], score: float | None,
                 protocol: Protocol):
    """:func:`pass1_image`, with the map as read as a fourth item of the result."""
    try:
        amap, map_digest = read_map_digest(path)  # the file hashed while it is read
    except MapReadError as exc:
        return None, [Problem(exc.kind, path, exc.message)]
    if callable(truth):
        truth = truth()
    if truth.problem is not None:
        return None, [truth.problem]
    result, on_grid = score_image(amap, truth, score, map_digest, protocol)
    return (truth, result, on_grid, amap), []


def _progress(total: int, desc: str, enabled: bool, unit: str = "img"):
    from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)


class ImageObserver:
    """Receives every image of a category while it is scored (e.g. bootstrap statistics).

    :meth:`start` opens a category of ``n`` images; :meth:`pass1` sees image ``i`` (in
    manifest order) after pass 1; :meth:`pass2` sees its map on the grid in pass 2 (from
    several threads, each image once); :meth:`finish` closes the category.
    """

    def start(self, folder: str, n: int) -> None:  # pragma: no cover - interface
        """A category of ``n`` images begins."""

    def pass1(self, i: int, truth: ImageTruth, result: ImageScore) -> None:  # pragma: no cover
        """Image ``i`` after pass 1."""

    def end_pass1(self) -> None:  # pragma: no cover - interface
        """Every image of the category went through pass 1."""

    def pass2(self, i: int, on_grid: np.ndarray, flat_positive: np.ndarray) -> None:  # pragma: no cover
        """Image ``i``'s map on the grid, in pass 2."""

    def finish(self, evaluation: "CategoryEvaluation") -> None:  # pragma: no cover - interface
        """The category is scored."""


def category_truths(rows: list[dict[str, Any]], protocol: Protocol, pool: ThreadPoolExecutor) -> list[ImageTruth]:
    """The ground truth of every row (masks read once, in threads), for several submissions."""
    return list(pool.map(lambda row: image_truth(row, protocol), rows))


def evaluate_category(submission: Submission, folder: str, rows: list[dict[str, Any]], protocol: Protocol,
                      pool: ThreadPoolExecutor, *, workers: int, truths: Sequence[ImageTruth] | None = None,
                      observer: ImageObserver | None = None, progress: bool = False,
                      cache_bytes: int = DEFAULT_CACHE_BYTES, count: bool = True) -> tuple[CategoryEvaluation, list[Problem]]:
    """Score one category of ``submission`` (both passes); return it and its problems.

    ``rows`` are the category's test rows of the manifest, in order; ``truths``, when
    given, their ground truth already read (:func:`category_truths`), so that several
    submissions share one reading of the masks. With problems (or ``count=False``: pass 1
    only, to list problems), pass 2 is skipped and the evaluation is incomplete.
    The phases one after the other: :func:`read_category`, :func:`count_category`,
    :func:`summarize_counted`.
    """
    ev, problems, cache = read_category(submission, folder, rows, protocol, pool, truths=truths, observer=observer,
                                        progress=progress, cache_bytes=cache_bytes)
    if count and not problems:  # pass 2 now, while this category's maps are still cached
        count_category(ev, submission, protocol, pool, workers, cache, progress=progress, observer=observer)
        summarize_counted(ev, protocol, progress=progress)
    cache.clear()
    return ev, problems


def read_category(submission: Submission, folder: str, rows: list[dict[str, Any]], protocol: Protocol,
                  pool: ThreadPoolExecutor, *, truths: Sequence[ImageTruth] | None = None,
                  observer: ImageObserver | None = None, progress: bool = False,
                  cache_bytes: int = DEFAULT_CACHE_BYTES
                  ) -> tuple[CategoryEvaluation, list[Problem], dict[str, np.ndarray]]:
    """Pass 1 of one category (see :func:`evaluate_category`): the evaluation so far, the
    problems found, and the maps kept for pass 2 (by image id, up to ``cache_bytes``; none
    once a problem is found)."""
    builder = CategoryBuilder(folder)
    start = time.perf_counter()
    problems: list[Problem] = []
    cache: dict[str, np.ndarray] = {}
    cached = 0
    items = list(zip(rows, truths if truths is not None else [None] * len(rows)))
    if observer is not None:
        observer.start(folder, len(rows))
    with _progress(len(rows), f"{builder.evaluation.code} read", progress) as bar:
        for i, (row, (result, probs)) in enumerate(zip(rows, pool.map(_Pass1(protocol, submission), items))):
            bar.update()
            problems.extend(probs)
            if result is None:
                continue
            truth, scored, kept, keys = result
            if not problems and cached + kept.nbytes <= cache_bytes:
                cache[row["image_id"]] = kept
                cached += kept.nbytes
            builder.add(truth, scored, keys=keys)
            if observer is not None and not problems:
                observer.pass1(i, truth, scored)
    if problems:
        cache.clear()
    ev = builder.evaluation
    ev.seconds["read"] = time.perf_counter() - start
    return ev, problems, cache


def count_category(ev: CategoryEvaluation, submission: Submission, protocol: Protocol, pool: ThreadPoolExecutor,
                   workers: int, cache: dict[str, np.ndarray], *, progress: bool = False,
                   observer: ImageObserver | None = None, ready: Callable[[], None] | None = None) -> None:
    """Pass 2 of one category read by :func:`read_category` without problems: the index
    sorted, ``ready()`` called (e.g. to wait for the previous category's metrics), every
    normal pixel counted (the kept maps, else read again; ``cache`` is emptied), then
    ``observer.finish``."""
    if observer is not None:
        observer.end_pass1()
    return_freed_memory()
    _count_normals(ev, submission, protocol, pool, workers, cache, progress, observer, ready)
    if observer is not None:
        observer.finish(ev)
    cache.clear()
    return_freed_memory()


def summarize_counted(ev: CategoryEvaluation, protocol: Protocol, *, progress: bool = False) -> dict[str, Any]:
    """The metrics of a counted category (:func:`summarize_category`), timed and logged."""
    start = time.perf_counter()
    summary = summarize_category(ev, protocol, progress=progress)
    ev.seconds["metrics"] = time.perf_counter() - start
    log.info("%s: %d images, %s distinct anomalous scores; phases (s): %s", ev.code, len(ev.records),
             f"{ev.pixels.index.size:,}" if ev.pixels.index is not None else "?",
             ", ".join(f"{k} {v:.2f}" for k, v in ev.seconds.items()))
    return summary


def evaluate_submission(submission: Submission, manifest: Any, protocol: Protocol, *,
                        workers: int | None = None, progress: bool = False,
                        cache_bytes: int = DEFAULT_CACHE_BYTES, observer: ImageObserver | None = None,
                        keep_pixels: bool = True) -> list[CategoryEvaluation]:
    """Evaluate every category of ``submission`` against ``manifest`` (see module doc).

    A category's metrics (:func:`summarize_counted`, one thread) are computed while the
    next category is read (pass 1, ``workers`` threads) and its index sorted (mostly one
    thread), and are done before that one's normal pixels are counted: at most two
    categories' statistics are held at a time, and never during a count. The values do
    not depend on it.

    Parameters
    ----------
    cache_bytes : int
        Maps are kept from pass 1 to pass 2 (each as read or on the protocol grid, whichever
        is smaller; a kept map is brought onto the grid again by the same deterministic rule)
        while their total stays under this many bytes per category; the rest are read again.
        Memory stays bounded whatever the number of images.
    observer : ImageObserver, optional
        Sees every image while it is scored (e.g. :class:`eval.bootstrap.BootstrapObserver`).
    keep_pixels : bool
        Keep each category's pixel statistics (``CategoryEvaluation.pixels``, e.g. for
        :func:`eval.figures.category_curves`). With False they are freed once the category
        is summarized.

    Raises
    ------
    SubmissionError
        Listing every problem found in pass 1 (unreadable or invalid maps, bad ground truth)
        over all categories; nothing is scored then.
    """
    workers = max(1, workers or os.cpu_count() or 1)
    test = manifest[manifest["split"] == "test"]
    evaluations: list[CategoryEvaluation] = []
    problems: list[Problem] = []

    def summarize(ev: CategoryEvaluation) -> None:
        summarize_counted(ev, protocol, progress=progress)
        if not keep_pixels:
            ev.pixels.release(whole=True)

    with ThreadPoolExecutor(max_workers=workers) as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics") as metrics:
        pending = None  # the previous category's metrics, computed while this one is read
        for folder in submission.categories:
            rows = test[test["category"] == folder].to_dict("records")
            ev, probs, cache = read_category(submission, folder, rows, protocol, pool,
                                             observer=None if problems else observer, progress=progress,
                                             cache_bytes=0 if problems else cache_bytes)
            problems.extend(probs)
            if not problems:
                count_category(ev, submission, protocol, pool, workers, cache, progress=progress, observer=observer,
                               ready=pending.result if pending is not None else None)  # raises what they raised
                pending = metrics.submit(summarize, ev)
            elif not keep_pixels:
                ev.pixels.release(whole=True)
            cache.clear()
            evaluations.append(ev)
        if pending is not None:
            pending.result()
    if problems:
        raise submission_error(submission, problems)
    return evaluations


def _count_normals(ev: CategoryEvaluation, submission: Submission, protocol: Protocol, pool, workers: int,
                   cache: dict[str, np.ndarray], progress: bool, observer: ImageObserver | None = None,
                   ready: Callable[[], None] | None = None) -> None:
    """Pass 2 of one category: sort the index, call ``ready``, count every normal pixel
    (cached maps, else read again)."""
    start = time.perf_counter()
    with _progress(1, f"{ev.code} sort", progress, unit="step") as bar:
        ev.pixels.finalize_positives(type_breakdowns(ev.groups).values(), prepare=workers > 1)
        bar.update()
    ev.seconds["sort"] = time.perf_counter() - start
    if ready is not None:
        ready()
    start = time.perf_counter()
    # more runs than threads, taken in order by whichever thread is free: the threads end
    # together; each thread keeps one tally over its runs (they come to it in group order)
    chunks = _group_runs(ev.records, workers * _RUNS_PER_THREAD if workers > 1 else 1)
    local = threading.local()
    tallies: list[NegativeTally] = []
    with _progress(len(ev.records), f"{ev.code} count", progress) as bar:

        def count(chunk):
            tally = getattr(local, "tally", None)
            if tally is None:
                tally = local.tally = ev.pixels.new_tally()
                tallies.append(tally)
            for i, rec in chunk:
                kept = cache.get(rec.image_id)
                if kept is None:
                    kept = read_map(submission.maps[rec.image_id])
                on_grid = map_on_grid(kept, rec.shape, protocol)  # the same rule as pass 1: same values
                ev.pixels.add_negatives(tally, on_grid, rec.flat_positive, group=rec.group)
                if observer is not None:
                    observer.pass2(i, on_grid, rec.flat_positive)
                rec.flat_positive = None
                bar.update()

        for _ in pool.map(count, chunks):
            pass
        for _ in pool.map(NegativeTally.flush, tallies):  # the buffered pixels counted in the threads
            pass
        for tally in tallies:
            ev.pixels.merge(tally)
    ev.seconds["count"] = time.perf_counter() - start


_RUNS_PER_THREAD = 4
"""Pass 2 splits a category into this many runs per thread (:func:`_group_runs`). With one
run per thread, one thread idled 0.4-0.9 s at the end of each native-size category of
scripts/bench_eval_full.py; more runs cost one more hand-over of a group's counts each."""


def _group_runs(records: list[ImageRecord], runs: int) -> list[list[tuple[int, ImageRecord]]]:
    """``(index, record)`` pairs split into ``runs`` runs of about equal pixel counts, in
    order of group: a tally fed runs in order then holds counts for only one group at a
    time (a tally holds one array per group, each as long as the category's distinct
    anomalous scores). The counts are integers, so the split does not change them."""
    ordered = sorted(enumerate(records), key=lambda item: (item[1].group, item[0]))
    if runs <= 1 or len(ordered) <= 1:
        return [ordered]
    cum = np.cumsum([rec.n_pixels for _, rec in ordered])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, runs) / runs, side="left") + 1
    bounds = [0, *np.minimum(cuts, len(ordered)).tolist(), len(ordered)]
    return [ordered[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _image_metrics(records: list[ImageRecord], name: str) -> tuple[float, float]:
    scores = np.array([r.score for r in records], np.float64)
    labels = np.array([r.label for r in records], np.int8)
    return (roc_auc(labels, scores) if len(records) else float("nan"),
            average_precision(labels, scores) if len(records) else float("nan"))


def _block(ev: CategoryEvaluation, records: list[ImageRecord], groups: set[int], protocol: Protocol,
           label: str) -> dict[str, Any]:
    import warnings

    from .curves import UndefinedMetricWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedMetricWarning)
        i_auroc, i_ap = _image_metrics(records, label)
        px = ev.pixels.compute(groups, fpr_limit=protocol.fpr_limit, label=label)
    for w in caught:
        log.warning("%s: %s", label, w.message)
    out: dict[str, Any] = {
        "image_auroc": i_auroc, "image_ap": i_ap, "pixel_auroc": px.auroc, "pixel_ap": px.ap,
    }
    if protocol.aupro == "paper_per_image":
        defective = [r.pro_paper for r in records if r.types]
        mean = mean_pro_paper(defective, category=label)
        out["aupro"] = mean.value
        out["aupro_skipped_images"] = mean.n_skipped
        out["aupro_mvtec"] = px.aupro
    else:
        out["aupro"] = px.aupro
    out.update({
        "n_images": len(records),
        "n_defective": sum(1 for r in records if r.types),
        "n_regions": px.n_regions,
        "n_pixels": px.n_pixels,
        "n_anomalous_pixels": px.n_anomalous,
    })
    out["_by_size"] = {size: {"aupro": px.aupro_by_size[size], "n_regions": px.regions_by_size[size]}
                       for size in px.aupro_by_size}
    return out


def type_breakdowns(groups: dict[tuple[str, ...], int]) -> dict[str, frozenset[int]]:
    """The groups of each defect type's breakdown: the good images (group 0) and every image
    filed under that type (alone or with others), by type name in sorted order."""
    types = sorted({t for key in groups for t in key})
    return {t: frozenset({0} | {g for key, g in groups.items() if t in key}) for t in types}


def summarize_category(ev: CategoryEvaluation, protocol: Protocol, *, progress: bool = False) -> dict[str, Any]:
    """The results of one category: the metrics, then ``by_type`` and ``by_size`` breakdowns.

    Computed once and kept in ``ev.summary`` (:func:`summarize_counted` computes it after
    counting, with a progress bar over the breakdowns when ``progress``).
    """
    if ev.summary is not None:
        return ev.summary
    breakdowns = type_breakdowns(ev.groups)
    every = set(ev.groups.values())
    with _progress(1 + len(breakdowns), f"{ev.code} metrics", progress, unit="set") as bar:
        by_type = {}
        whole = None
        for t, groups in breakdowns.items():  # each breakdown's counts are freed once used
            if groups >= every:  # e.g. a category of one defect type: its breakdown is the whole
                if whole is None:
                    whole = _block(ev, ev.records, every, protocol, ev.code)
                block = dict(whole)  # the same images and counts: the same values
            else:
                recs = [r for r in ev.records if r.group in groups]
                block = _block(ev, recs, groups, protocol, f"{ev.code} {t}")
                ev.pixels.release(groups)
            block.pop("_by_size")
            by_type[t] = block
            bar.update()
        if whole is None:
            whole = _block(ev, ev.records, every, protocol, ev.code)
        bar.update()
        by_size = whole.pop("_by_size")
    ev.summary = {"code": ev.code, **whole, "by_type": by_type, "by_size": by_size}
    return ev.summary


def ground_truth_digest(evaluations: list[CategoryEvaluation]) -> str:
    """sha256 over every scored image's key, label and mask digests (sorted by key)."""
    h = hashlib.sha256()
    for ev in evaluations:
        for r in sorted(ev.records, key=lambda r: r.image_id):
            h.update(f"{r.image_id}\t{','.join(r.types)}\t{','.join(r.mask_sha256)}\n".encode())
    return h.hexdigest()
