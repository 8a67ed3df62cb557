"""The scoring API: :class:`Evaluator` scores submissions against one ground truth.

Every front end calls it: ``threecad eval``, ``threecad verify``, the leaderboard (which
scores several submissions category by category, see :mod:`eval.leaderboard`), the viewer
and the Dask path.

>>> from threecad.eval import Evaluator                             # doctest: +SKIP
>>> ev = Evaluator("3cad/", protocol="standard", categories=["ACC"])  # doctest: +SKIP
>>> results = ev.score("preds/")                                    # doctest: +SKIP
>>> results.metric("pixel_auroc"), results.to_frame()               # doctest: +SKIP

The ground truth is scanned once per evaluator; a submission (folder or ``.zip``) is
validated before anything is scored (every problem listed at once in a
:class:`eval.submission.SubmissionError`). Scoring runs in this process (threads) or, with
``client``/``scheduler``/``n_workers``, on a Dask cluster; the numbers are identical.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from threecad.categories import get_category
from threecad.errors import UsageError

from .evaluate import CategoryEvaluation, ImageObserver, ImageScore, ImageTruth
from .metric_names import Metric
from .pixels import ImagePositives, PixelStats, max_outside
from .protocols import Protocol, get_protocol
from .results import CategoryResult, ImageResult, Results

if TYPE_CHECKING:
    from .timing import PhaseTimer

__all__ = ["Evaluator", "Results", "CategoryResult", "ImageResult", "Metric", "ImageTableObserver",
           "ObserverGroup", "PhaseObserver", "start_engine_warm_up"]

log = logging.getLogger(__name__)


class ImageTableObserver(ImageObserver):
    """Measures the per-image columns that the pixel tallies do not keep.

    For every image: the number of anomalous pixels and the highest anomalous score (pass
    1), the highest normal score and, under a protocol with the pooled MVTec AUPRO, the
    image's own AUPRO (pass 2, from its map on the grid). :attr:`extras` maps image ids to
    those values (the keys of :class:`eval.results.ImageResult`).

    With ``threads`` above 1, the images' own AUPROs are computed by a pool of ``threads``
    threads of this observer while pass 2 goes on (at most ``2 * threads`` maps wait for
    it), so that they are spread over the cores whichever pass-2 thread met the defective
    images; with 1, in pass 2's thread. The values do not depend on the threads.
    """

    def __init__(self, protocol: Protocol, *, threads: int | None = None) -> None:
        self.protocol = protocol
        self.extras: dict[str, dict[str, Any]] = {}
        self._ids: list[str] = []
        self._positives: dict[int, ImagePositives] = {}   # image -> its anomalous pixels, pass 1 to 2
        self._lock = threading.Lock()
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._pool: Any = None
        self._slots = threading.BoundedSemaphore(2 * self._threads)
        self._pending: list[tuple[int, Any]] = []

    def start(self, folder: str, n: int) -> None:
        """A category begins: image ``i`` is known after pass 1."""
        self._close_pool()  # a category that failed in pass 2 left its tasks
        self._ids = [""] * n
        self._positives = {}

    def pass1(self, i: int, truth: ImageTruth, result: ImageScore) -> None:
        """Anomalous pixel count and maximum; the image's regions kept for its own AUPRO."""
        values = result.values
        self._ids[i] = truth.image_id
        self.extras[truth.image_id] = {
            "n_anomalous_pixels": int(values.size),
            "max_anomalous_score": float(values.max()) if values.size else float("nan"),
        }
        if self.protocol.aupro == "mvtec" and values.size:
            from dataclasses import replace

            from .evaluate import image_keys

            self._positives[i] = replace(truth.positives, keys=image_keys(result))

    def pass2(self, i: int, on_grid: np.ndarray, flat_positive: np.ndarray) -> None:
        """Normal maximum now, or with the image's own AUPRO (one pass over the map on the
        grid, :func:`image_columns`) in the pool."""
        flat = np.asarray(on_grid).reshape(-1)
        has_normal = flat_positive.size < flat.size
        with self._lock:
            positives = self._positives.pop(i, None)
        if positives is None or not has_normal:
            self._store(i, _max_normal(flat, flat_positive) if has_normal else float("nan"))
            return
        if self._threads == 1:  # one thread asked for: no pool
            columns = self._columns(positives, on_grid, flat_positive)
            self._store(i, columns.max_normal_score, columns.pro)
            return
        self._slots.acquire()  # bounds the maps held for the pool
        try:
            with self._lock:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="image-aupro")
                future = self._pool.submit(self._columns, positives, on_grid, flat_positive)
                self._pending.append((i, future))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())

    def _columns(self, positives: ImagePositives, on_grid: np.ndarray, flat_positive: np.ndarray) -> "ImageColumns":
        return image_columns(positives, on_grid, flat_positive, fpr_limit=self.protocol.fpr_limit)

    def _store(self, i: int, max_normal_score: float, pro: float | None = None) -> None:
        """Image ``i``'s highest normal score and, when it has one, its own AUPRO."""
        with self._lock:
            extra = self.extras[self._ids[i]]
            extra["max_normal_score"] = max_normal_score
            if pro is not None:
                extra["pro"] = pro

    def end_pass1(self) -> None:
        """Nothing to do between the passes."""

    def finish(self, evaluation: CategoryEvaluation) -> None:
        """The images' own AUPROs (and their normal maxima), once the pool has computed them all."""
        pending, self._pending = self._pending, []
        try:
            for i, future in pending:
                columns = future.result()
                self._store(i, columns.max_normal_score, columns.pro)
        finally:
            self._close_pool()

    def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._pending = []


@dataclass(frozen=True)
class ImageColumns:
    """What one image's normal pixels give its row of the per-image table."""

    pro: float               # the image's own MVTec AUPRO
    max_normal_score: float  # the highest normal score (NaN when every pixel is anomalous)
    n_thresholds: int        # the thresholds the AUPRO was computed over (after the cut)


def image_columns(positives: ImagePositives, on_grid: np.ndarray, flat_positive: np.ndarray, *,
                  fpr_limit: float) -> ImageColumns:
    """One image's own exact MVTec AUPRO and highest normal score, in one pass over its map.

    The AUPRO is computed over the thresholds at or above the cut that
    :func:`aupro_positives` places from a sample of the map; the pass checks it (the
    normal pixels at or above the cut must reach ``fpr_limit`` of them, so that the area
    never reads a lower threshold) and, when the sample misled, the image is counted again
    over every threshold. Either way the value is :func:`image_aupro`'s over every
    threshold, bit for bit.

    Parameters
    ----------
    positives : ImagePositives
        The image's anomalous pixels with their keys.
    on_grid : ndarray of shape (H, W)
        The map on the grid (the keys are of its values at ``flat_index``).
    flat_positive : ndarray of shape (p,)
        Flat indices of every anomalous pixel (left out of the normal count).
    fpr_limit : float
    """
    kept = aupro_positives(positives, on_grid, fpr_limit)
    pro, top, at_or_above, n = _own_aupro(kept, on_grid, flat_positive, fpr_limit)
    n_normal = on_grid.size - np.asarray(flat_positive).size
    if kept is not positives and at_or_above < fpr_limit * n_normal:  # the sample misled: every threshold
        pro, top, _, n = _own_aupro(positives, on_grid, flat_positive, fpr_limit)
    return ImageColumns(pro, top, n)


def image_aupro(positives: ImagePositives, on_grid: np.ndarray, flat_positive: np.ndarray, *,
                fpr_limit: float) -> float:
    """The exact MVTec AUPRO of one image over the thresholds of ``positives``: the engine's
    tallies over this image alone (only the AUPRO is computed from them).

    Parameters
    ----------
    positives : ImagePositives
        The image's anomalous pixels with their keys (all of them: the AUPRO's definition;
        or some, e.g. :func:`aupro_positives`'s, whose area :func:`image_columns` checks);
        ``n_regions`` and ``regions_per_class`` are the image's.
    on_grid : ndarray of shape (H, W)
        The map on the grid.
    flat_positive : ndarray of shape (p,)
        Flat indices of every anomalous pixel (all of them are left out of the normal count).
    fpr_limit : float
    """
    return _own_aupro(positives, on_grid, flat_positive, fpr_limit)[0]


def _own_aupro(positives: ImagePositives, on_grid: np.ndarray, flat_positive: np.ndarray,
               fpr_limit: float) -> tuple[float, float, int, int]:
    """``(AUPRO, highest normal score, normal pixels at or above the lowest threshold,
    thresholds)`` of one image over the thresholds of ``positives``: one pass of
    :func:`eval.engine.count_outside` over the map, folded into the image's own
    :class:`eval.pixels.PixelStats`."""
    from .curves import aupro_from
    from .engine import count_outside

    stats = PixelStats()
    stats.add_positives(positives)
    index = stats.finalize_positives()
    counts, top = count_outside(index, on_grid, flat_positive)
    stats.fold(0, counts)
    at_or_above = int(counts.total - counts.below[0])
    tc = stats.total().threshold_counts(index.values)
    return aupro_from(tc, fpr_limit=fpr_limit), top, at_or_above, index.size


_CUT_SAMPLE = 2048          # pixels sampled to place the cut of :func:`aupro_positives`
_CUT_MARGIN = 1.3           # the cut aims at this many times the normal pixels the area needs


def aupro_positives(positives: ImagePositives, on_grid: np.ndarray, fpr_limit: float) -> ImagePositives:
    """The anomalous pixels of one image that its own AUPRO probably needs as thresholds.

    The area walks the thresholds (the distinct anomalous scores) from high to low and stops
    at the first threshold ``t`` with at least ``fpr_limit * n_neg`` normal pixels ``>= t``
    (:func:`eval.curves.aupro_from`); every lower threshold is never read. So the
    thresholds down to such a ``t`` give the same area, bit for bit: the counts at each
    kept threshold (normal pixels above, on, PRO weight summed in pixel order) do not depend
    on the others, the normal pixels below ``t`` are still counted (all below the lowest
    kept value) and the regions are the image's. ``t`` is placed here from a sample of the
    map; :func:`image_columns` checks it while it counts. For maps that are not floating
    point of at most 64 bits (the engine compares scores as float64, so only those compare
    the same here), every pixel is kept.

    Parameters
    ----------
    positives : ImagePositives
        The image's anomalous pixels with keys (in the order of ``flat_index``).
    on_grid : ndarray of shape (H, W)
        The map on the grid (the keys are of its values at ``flat_index``).
    fpr_limit : float

    Returns
    -------
    ImagePositives
        ``positives``, or those with a score ``>= t`` (same regions).
    """
    flat = np.asarray(on_grid).reshape(-1)
    p = positives.flat_index.size
    if flat.dtype.kind != "f" or flat.dtype.itemsize > 8 or p < 2 or p >= flat.size:
        return positives
    values = flat[positives.flat_index]
    sample = flat[::max(1, flat.size // _CUT_SAMPLE)]
    rank = int(sample.size * max(0.0, 1.0 - _CUT_MARGIN * fpr_limit))
    if rank == 0:
        return positives
    estimate = np.partition(sample, rank)[rank]  # about the score above which the area stops
    below = values[values <= estimate]
    if below.size == 0:  # every anomalous score above it: nothing to leave out
        return positives
    keep = values >= below.max()
    return ImagePositives(positives.flat_index[keep], positives.keys[keep], positives.weights[keep],
                          positives.size_class[keep], positives.n_regions, positives.regions_per_class)


class PhaseObserver(ImageObserver):
    """Times the phases of each category in :func:`eval.evaluate.evaluate_submission`.

    ``<code> read`` runs from the category's start to the end of pass 1, ``<code> count``
    to the end of pass 2, ``<code> metrics`` until the next category starts or the
    caller ends it (:meth:`PhaseTimer.end`). A category's metrics are computed while the
    next category is read, so its ``metrics`` phase is short and the next ``read`` holds
    them, except for the last category.
    """

    def __init__(self, timer: PhaseTimer) -> None:
        self.timer = timer
        self._code = ""

    def start(self, folder: str, n: int) -> None:
        """The category's ``read`` phase begins."""
        self._code = get_category(folder).code
        self.timer.begin(f"{self._code} read ({n} images)")

    def pass1(self, i, truth, result) -> None:
        """Nothing per image."""

    def end_pass1(self) -> None:
        """Its ``count`` phase begins."""
        self.timer.begin(f"{self._code} count")

    def pass2(self, i, on_grid, flat_positive) -> None:
        """Nothing per image."""

    def finish(self, evaluation) -> None:
        """Its ``metrics`` phase begins (the other observers have finished: this one is last)."""
        self.timer.begin(f"{self._code} metrics")


_warm_up_lock = threading.Lock()
_warm_up_started = False


def start_engine_warm_up(*, lean: bool = False) -> bool:
    """Load the engine's compiled kernels in a background thread, once per process.

    numba's first compiled call in a process takes about half a second of CPU, holding the
    interpreter: it imports every implementation it has, then loads the cached kernels.
    :meth:`Evaluator.score` starts this while pass 1 reads and hashes maps and decodes masks
    (work that mostly runs outside the interpreter lock), so that no counting thread waits
    for it in pass 2. (Started before the scan instead, it competes with the scan and the
    validation for the interpreter: measured slower with scripts/bench_eval_cli.py.) Later
    calls do nothing.

    Parameters
    ----------
    lean : bool
        Load numba's array functions without its BLAS probe (:func:`_numba_arrays_without_blas`):
        about 0.25 s of CPU less (SciPy's linear algebra, OpenBLAS and their imports are not
        loaded). Then ``np.correlate``/``np.convolve`` in numba-compiled code of this process
        use numba's plain loops instead of BLAS; the engine uses neither. For a process that
        runs no other numba code (``threecad eval``).

    Returns
    -------
    bool
        Whether this call started the warm-up.
    """
    global _warm_up_started
    with _warm_up_lock:
        if _warm_up_started:
            return False
        _warm_up_started = True
    threading.Thread(target=_warm_up_engine, args=(lean,), name="threecad-engine-warm-up", daemon=True).start()
    return True


def _numba_arrays_without_blas() -> bool:
    """Import ``numba.np.arraymath`` (numba's first compiled call imports it) while numba's
    BLAS probe answers "absent", so that the import does not load SciPy's linear algebra.

    Only numba's own probe function is swapped, for this one import, and put back in both
    modules: nothing else in the process sees a difference (another thread's import of SciPy
    works as usual; a thread that imports ``arraymath`` meanwhile waits for this import).
    Returns whether it imported it (False when it was already imported).
    """
    import sys

    if "numba.np.arraymath" in sys.modules:
        return False
    import numba.np.linalg as linalg

    probe = linalg.ensure_blas

    def absent() -> None:
        raise ImportError("BLAS is not needed by threecad's kernels")

    linalg.ensure_blas = absent
    try:
        import numba.np.arraymath as arraymath
    finally:
        linalg.ensure_blas = probe
    arraymath.ensure_blas = probe
    return True


def _warm_up_engine(lean: bool = False) -> None:
    """Count a 2x2 map once, so that the engine's compiled kernels are loaded (see
    :func:`start_engine_warm_up`). Any failure is ignored: scoring then loads the kernels
    itself."""
    try:
        if lean:
            _numba_arrays_without_blas()
        from .engine import order_keys

        stats = PixelStats()
        flat = np.zeros(1, np.int64)
        keys = order_keys(np.array([0.5], np.float32))
        stats.add_positives(ImagePositives(flat, keys, np.ones(1), np.zeros(1, np.int8), 1, (1, 0, 0)))
        index = stats.finalize_positives()
        tally = stats.new_tally()
        stats.add_negatives(tally, np.array([[0.5, 0.25], [0.75, 1.0]], np.float32), flat)
        stats.merge(tally)
        from .curves import aupro_from

        aupro_from(stats.total().threshold_counts(index.values))
    except Exception:  # noqa: BLE001 - only a warm-up
        log.debug("engine warm-up failed", exc_info=True)


def _max_normal(flat: np.ndarray, flat_positive: np.ndarray) -> float:
    """The highest value of ``flat`` outside ``flat_positive`` (some pixel lies outside).

    The map's maximum when no anomalous pixel reaches it (no copy of the map); else the
    maximum over the normal pixels."""
    top = flat.max()
    if flat_positive.size == 0 or flat[flat_positive].max() < top:
        return float(top)
    return max_outside(flat, flat_positive)  # one pass around the anomalous pixels, no mask


class ObserverGroup(ImageObserver):
    """Several :class:`eval.evaluate.ImageObserver` fed as one (e.g. the per-image table and the bootstrap)."""

    def __init__(self, *observers: ImageObserver | None) -> None:
        self.observers = [o for o in observers if o is not None]

    def start(self, folder: str, n: int) -> None:
        for o in self.observers:
            o.start(folder, n)

    def pass1(self, i: int, truth: ImageTruth, result: ImageScore) -> None:
        for o in self.observers:
            o.pass1(i, truth, result)

    def end_pass1(self) -> None:
        for o in self.observers:
            o.end_pass1()

    def pass2(self, i: int, on_grid: np.ndarray, flat_positive: np.ndarray) -> None:
        for o in self.observers:
            o.pass2(i, on_grid, flat_positive)

    def finish(self, evaluation: CategoryEvaluation) -> None:
        for o in self.observers:
            o.finish(evaluation)


def _phase(timer: "PhaseTimer | None", name: str) -> Any:
    """``timer.phase(name)``, or nothing without a timer."""
    return nullcontext() if timer is None else timer.phase(name)


class Evaluator:
    """Scores submissions against the ground truth at ``root``.

    Parameters
    ----------
    root : str or Path
        The 3CAD tree (MVTec AD layout). Scanned once, when first needed.
    protocol : str or Protocol
        ``"standard"`` (default) or ``"paper"`` (:mod:`eval.protocols`).
    categories : sequence of str, optional
        Score only these categories (codes, folder names or aliases); each must be in the
        submission. Default: every category the submission covers.
    label_map : threecad.labels.LabelMap, optional
        Extra defect folder names for the tree.
    threads : int, optional
        Threads in this process (default: all CPUs).
    progress : bool
        Progress bars on stderr.
    client, scheduler, n_workers : optional
        Score on a Dask cluster: a connected ``distributed.Client``, a scheduler address, or
        a local cluster of ``n_workers`` processes started for each :meth:`score` call.
    chunk_size : int, optional
        Images per Dask task.
    per_image : bool
        Measure the per-image table's pass-2 columns (highest normal score, the image's
        own AUPRO); in this process only.
    lean_warm_up : bool
        Load numba without its BLAS probe (:func:`start_engine_warm_up` with ``lean``): for
        a process that runs no other numba code (``threecad eval``).

    Raises
    ------
    UsageError
        Unknown protocol, bad cluster settings, no folder at ``root``.
    """

    def __init__(self, root: str | os.PathLike[str], *, protocol: str | Protocol = "standard",
                 categories: Sequence[str] | None = None, label_map: Any = None, threads: int | None = None,
                 progress: bool = False, client: Any = None, scheduler: str | None = None,
                 n_workers: int | None = None, chunk_size: int | None = None, per_image: bool = True,
                 lean_warm_up: bool = False) -> None:
        self.root = Path(root)
        self.protocol = protocol if isinstance(protocol, Protocol) else get_protocol(protocol)
        self.categories = list(categories) if categories else None
        self.label_map = label_map
        self.threads = threads
        self.progress = progress
        self.client = client
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.lean_warm_up = lean_warm_up
        self.chunk_size = chunk_size
        self.per_image = per_image
        self.last_report: dict[str, Any] = {}
        self._scan: Any = None
        if n_workers is not None and n_workers < 1:
            raise UsageError(f"a local Dask cluster needs at least 1 worker, got {n_workers}")
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be at least 1, got {threads}")
        if self.on_cluster and client is None:
            from .distributed import require_dask

            require_dask()

    @property
    def on_cluster(self) -> bool:
        """Whether scoring runs on a Dask cluster."""
        return self.client is not None or bool(self.scheduler) or self.n_workers is not None

    @property
    def ground_truth(self) -> Any:
        """The scanned tree (:class:`threecad.manifest.ScanResult`); :class:`DataError` when it has problems."""
        if self._scan is None:
            from threecad.manifest import raise_on_errors, scan

            if not self.root.is_dir():
                raise UsageError(f"no dataset at {self.root}")
            result = scan(self.root, label_map=self.label_map)
            raise_on_errors(result.errors, f"the ground truth at {result.root} has problems")
            self._scan = result
        return self._scan

    @property
    def manifest(self) -> Any:
        """The tree's manifest (a DataFrame, one row per image)."""
        return self.ground_truth.manifest

    def validate(self, folder: str | os.PathLike[str]) -> Any:
        """The :class:`eval.submission.Submission` in ``folder`` (an extracted one); raises
        :class:`eval.submission.SubmissionError` listing every problem."""
        from .submission import validate_submission

        return validate_submission(folder, self.manifest, categories=self.categories, workers=self.threads,
                                   progress=self.progress)

    def score(self, submission: str | os.PathLike[str], *, command: Sequence[str] | None = None,
              observer: ImageObserver | None = None, timer: "PhaseTimer | None" = None) -> Results:
        """Validate and score ``submission`` (a folder or a ``.zip``); nothing is written.

        ``observer`` (in this process only) sees every image while it is scored, e.g. a
        :class:`eval.bootstrap.BootstrapObserver`. ``command`` is recorded in the results
        (default: ``sys.argv``). ``timer`` (:class:`eval.timing.PhaseTimer`), when given,
        records the time of each phase (scan, validation, each category's passes, results).

        Raises
        ------
        SubmissionError
            The submission has problems (all listed); nothing was scored.
        UsageError
            An observer with a Dask cluster.
        """
        from .archive import submission_folder

        if self.on_cluster and observer is not None:
            raise UsageError("per-image observers (e.g. bootstrap statistics) run in this process only, "
                             "not on a Dask cluster")
        with submission_folder(submission) as folder:
            with _phase(timer, "scan the ground truth"):
                self.ground_truth
            with _phase(timer, "validate the submission"):
                validated = self.validate(folder)
            if self.on_cluster:
                with _phase(timer, "score on the cluster"):
                    return self._score_on_cluster(validated, command)
            return self._score_here(validated, command, observer, timer)

    def _score_here(self, submission: Any, command: Sequence[str] | None, observer: ImageObserver | None,
                    timer: "PhaseTimer | None" = None) -> Results:
        from .evaluate import evaluate_submission

        start_engine_warm_up(lean=self.lean_warm_up)
        table = ImageTableObserver(self.protocol, threads=self.threads) if self.per_image else None
        phases = PhaseObserver(timer) if timer is not None else None
        evaluations = evaluate_submission(submission, self.manifest, self.protocol, workers=self.threads,
                                          progress=self.progress, observer=ObserverGroup(table, observer, phases),
                                          keep_pixels=False)
        with _phase(timer, "results (digests, per-image table)"):
            return Results.build(submission, evaluations, self.protocol, data_root=self.ground_truth.root,
                                 command=command, extras=table.extras if table is not None else None)

    def _score_on_cluster(self, submission: Any, command: Sequence[str] | None) -> Results:
        from .distributed import DEFAULT_CHUNK_SIZE, DistributedScorer, cluster_client

        connect = nullcontext(self.client) if self.client is not None else \
            cluster_client(scheduler=self.scheduler, n_workers=self.n_workers)
        with connect as client:
            # an existing scheduler keeps the ground truth published for later runs
            scorer = DistributedScorer(client, self.ground_truth, self.protocol, data_root=self.ground_truth.root,
                                       progress=self.progress, chunk_size=self.chunk_size or DEFAULT_CHUNK_SIZE,
                                       publish=bool(self.scheduler))
            results = scorer.score(submission, command=command)
            self.last_report = dict(scorer.last_report)
            return results
