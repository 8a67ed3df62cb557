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

import os
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from threecad.errors import UsageError

from .evaluate import CategoryEvaluation, ImageObserver, ImageScore, ImageTruth
from .metric_names import Metric
from .pixels import ImagePositives, PixelStats
from .protocols import Protocol, get_protocol
from .results import CategoryResult, ImageResult, Results

__all__ = ["Evaluator", "Results", "CategoryResult", "ImageResult", "Metric", "ImageTableObserver",
           "ObserverGroup"]


class ImageTableObserver(ImageObserver):
    """Measures the per-image columns that the pixel tallies do not keep.

    For every image: the number of anomalous pixels and the highest anomalous score (pass
    1), the highest normal score and, under a protocol with the pooled MVTec AUPRO, the
    image's own AUPRO (pass 2, from its map on the grid). :attr:`extras` maps image ids to
    those values (the keys of :class:`eval.results.ImageResult`).
    """

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.extras: dict[str, dict[str, Any]] = {}
        self._ids: list[str] = []
        self._positives: dict[int, ImagePositives] = {}   # image -> its anomalous pixels, pass 1 to 2
        self._lock = threading.Lock()

    def start(self, folder: str, n: int) -> None:
        """A category begins: image ``i`` is known after pass 1."""
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
        """Normal maximum and the image's own AUPRO (from the map on the grid)."""
        flat = np.asarray(on_grid).reshape(-1)
        normal = np.ones(flat.size, bool)
        normal[flat_positive] = False
        out: dict[str, Any] = {"max_normal_score": float(flat[normal].max()) if normal.any() else float("nan")}
        positives = self._positives.pop(i, None)
        if positives is not None and normal.any():
            out["pro"] = self._image_aupro(positives, on_grid, flat_positive)
        with self._lock:
            self.extras[self._ids[i]].update(out)

    def _image_aupro(self, positives: ImagePositives, on_grid: np.ndarray, flat_positive: np.ndarray) -> float:
        """The exact MVTec AUPRO of one image (the engine's tallies over this image alone)."""
        stats = PixelStats()
        stats.add_positives(positives)
        stats.finalize_positives()
        tally = stats.new_tally()
        stats.add_negatives(tally, on_grid, flat_positive)
        stats.merge(tally)
        return stats.compute(fpr_limit=self.protocol.fpr_limit).aupro

    def end_pass1(self) -> None:
        """Nothing to do between the passes."""

    def finish(self, evaluation: CategoryEvaluation) -> None:
        """Nothing to do at the end of a category."""


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

    Raises
    ------
    UsageError
        Unknown protocol, bad cluster settings, no folder at ``root``.
    """

    def __init__(self, root: str | os.PathLike[str], *, protocol: str | Protocol = "standard",
                 categories: Sequence[str] | None = None, label_map: Any = None, threads: int | None = None,
                 progress: bool = False, client: Any = None, scheduler: str | None = None,
                 n_workers: int | None = None, chunk_size: int | None = None, per_image: bool = True) -> None:
        self.root = Path(root)
        self.protocol = protocol if isinstance(protocol, Protocol) else get_protocol(protocol)
        self.categories = list(categories) if categories else None
        self.label_map = label_map
        self.threads = threads
        self.progress = progress
        self.client = client
        self.scheduler = scheduler
        self.n_workers = n_workers
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
              observer: ImageObserver | None = None) -> Results:
        """Validate and score ``submission`` (a folder or a ``.zip``); nothing is written.

        ``observer`` (in this process only) sees every image while it is scored, e.g. a
        :class:`eval.bootstrap.BootstrapObserver`. ``command`` is recorded in the results
        (default: ``sys.argv``).

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
            validated = self.validate(folder)
            if self.on_cluster:
                return self._score_on_cluster(validated, command)
            return self._score_here(validated, command, observer)

    def _score_here(self, submission: Any, command: Sequence[str] | None, observer: ImageObserver | None) -> Results:
        from .evaluate import evaluate_submission

        table = ImageTableObserver(self.protocol) if self.per_image else None
        evaluations = evaluate_submission(submission, self.manifest, self.protocol, workers=self.threads,
                                          progress=self.progress, observer=ObserverGroup(table, observer),
                                          keep_pixels=False)
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
