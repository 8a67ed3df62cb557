"""Scoring on a Dask cluster: the same exact evaluation, spread over processes and machines.

``threecad eval PREDS --workers N`` (a local cluster of N worker processes) or
``--scheduler ADDRESS`` (an existing cluster) run the two passes of
:mod:`eval.evaluate` as Dask tasks over chunks of images (``chunk_size`` images of one
category per task). Each task reads its maps and masks where it runs (workers must see
the submission and the dataset under the same paths as the client) and sends back only
the engine's additive sufficient statistics, never map pixels:

* pass 0 (ground truth, once per dataset): masks on the protocol grid, their regions,
  the anomalous pixels' flat indices, PRO weights and size classes, the mask digests.
  The chunks stay on the cluster (futures held by :class:`DistributedScorer`, and, with
  ``publish=True``, published under a name derived from the data root, the manifest, the
  mask files' sizes and times, the protocol, the chunking and the threecad version), so
  that every later submission scored in the session (or, published, on the same
  scheduler) reuses them: masks are read once per dataset, not once per submission. The
  client fetches, once, a summary of them without the flat indices (labels, shapes,
  digests, PRO weights and size classes).
* pass 1 (per submission): per image the score, the map digest, the paper's per-image
  PRO and the scores of its anomalous pixels on the grid, in the map's own dtype
  (bounded by the number of anomalous pixels). Content problems (unreadable or invalid
  maps, bad ground truth) of every task are collected and raised at once as
  :class:`eval.submission.SubmissionError`, as in the single-process path.
* the client adds the images of each category in manifest order (so positives are
  concatenated in image order and the PRO weights are summed in the same order as in
  one process), builds the category's :class:`eval.engine.PositiveIndex` and scatters it
  to every worker once (``broadcast=True``);
* pass 2: each task counts its chunk's normal pixels against that index and returns
  :class:`eval.engine.NegativeCounts` per group (integers; sent sparse when that is
  smaller). They are summed pairwise in a tree of tasks on the cluster; the client
  fetches one total per category.

Tasks that raise are retried (``retries``); tasks of a worker that dies are rerun
elsewhere by Dask, and lost ground truth is recomputed from its task. Should every copy
of a scattered index be lost (all workers died), that category's pass 2 is counted again.

Integer counts add exactly and every float is computed as in one process, in the same
order, so ``results.json`` is identical bit for bit (apart from ``created`` and
``command``) to the single-process run.

Dask is an optional extra (``pip install 'threecad[dask]'``); this module imports it only
inside the functions that need a client, so importing it is cheap and dask-free; the
task functions below are plain functions of threecad's own objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import sys
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from threecad.errors import Problem, ThreecadError, UsageError

from .engine import NegativeCounts, PositiveIndex
from .evaluate import (CategoryBuilder, CategoryEvaluation, ImageScore, ImageTruth, image_truth, map_on_grid,
                       pass1_image, submission_error, type_breakdowns)
from .mapio import read_map
from .pixels import NegativeTally, PixelStats
from .protocols import Protocol
from .submission import Submission

if TYPE_CHECKING:  # pragma: no cover
    from .results import Results

__all__ = ["DASK_EXTRA", "DEFAULT_CHUNK_SIZE", "ClusterError", "DistributedScorer", "require_dask",
           "cluster_client", "local_cluster", "truth_task", "summary_task", "pass1_task", "pass2_task",
           "sum_task"]

log = logging.getLogger(__name__)

SCATTER_TIMEOUT_S = 30.0
"""Seconds one broadcast of a positive index may take before it is tried again."""

DASK_EXTRA = "pip install 'threecad[dask]'"
DEFAULT_CHUNK_SIZE = 128
"""Images of one category per task (64-256 keeps task overhead small and work balanced)."""

_EMPTY_FLAT = np.zeros(0, np.int64)


class ClusterError(ThreecadError):
    """The cluster could not finish the work (e.g. workers kept dying on a task)."""


def require_dask() -> None:
    """Raise :class:`UsageError` when Dask's distributed scheduler is not installed (imports nothing)."""
    from importlib.util import find_spec

    if find_spec("dask") is None or find_spec("distributed") is None:
        raise UsageError(f"scoring on a Dask cluster needs Dask: {DASK_EXTRA}")


# --------------------------------------------------------------------------- results of tasks
# Each carries its own pickled size (``nbytes``: what travels over the network) and
# reports it to Dask's memory accounting through ``__sizeof__``.


def _wire_size(obj: Any) -> int:
    return len(pickle.dumps(obj, protocol=5))


@dataclass
class TruthChunk:
    """Pass 0 of a chunk: the ground truth of its images, in manifest order (stays on the cluster)."""

    truths: list[ImageTruth]
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    mask_bytes: int = 0

    def __sizeof__(self) -> int:
        n = 1000 + 400 * len(self.truths)
        for t in self.truths:
            if t.positives is not None:
                p = t.positives
                n += p.flat_index.nbytes + p.weights.nbytes + p.size_class.nbytes
        return n


@dataclass
class TruthSummary:
    """What the client keeps of a :class:`TruthChunk` (once per dataset): the ground truth
    without the flat indices, which stay on the cluster for pass 2."""

    truths: list[ImageTruth]
    nbytes: int = 0

    def __sizeof__(self) -> int:
        return self.nbytes or 1000


@dataclass
class Pass1Chunk:
    """Pass 1 of a chunk: per image an :class:`ImageScore` or a Problem."""

    items: list[ImageScore | Problem]
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    map_bytes: int = 0      # bytes of the map files read
    nbytes: int = 0         # pickled size of this result

    def __sizeof__(self) -> int:
        return self.nbytes or 1000


@dataclass
class PackedTally:
    """Normal-pixel counts per group, packed (sparse or narrow integers) for the network.

    ``sent``, ``tasks`` and ``map_bytes`` add up, through the reduction tree, the
    results of every pass-2 and sum task below this one: what travelled, and what was read.
    """

    k: int
    groups: dict[int, tuple]
    nbytes: int = 0
    sent: int = 0
    tasks: int = 0
    sum_tasks: int = 0
    map_bytes: int = 0

    def __sizeof__(self) -> int:
        return self.nbytes or 1000


def _pack_counts(c: NegativeCounts) -> tuple:
    flat = np.concatenate([c.below, c.on])
    top = int(flat.max()) if flat.size else 0
    vdtype = np.uint32 if top < 2**32 else np.int64
    nz = np.flatnonzero(flat)
    if nz.size * (4 + np.dtype(vdtype).itemsize) < flat.size * np.dtype(vdtype).itemsize:
        return ("sparse", flat.size, nz.astype(np.uint32), flat[nz].astype(vdtype))
    return ("dense", flat.astype(vdtype))


def _unpack_counts(packed: tuple, k: int) -> NegativeCounts:
    if packed[0] == "sparse":
        _, size, idx, val = packed
        flat = np.zeros(size, np.int64)
        flat[idx] = val
    else:
        flat = packed[1].astype(np.int64)
    return NegativeCounts(flat[:k + 1].copy(), flat[k + 1:].copy())


def pack_tally(tally: NegativeTally, **extra: int) -> PackedTally:
    """A tally packed for the network (exact: integers only)."""
    out = PackedTally(tally.k, {g: _pack_counts(c) for g, c in sorted(tally.counts.items())}, **extra)
    out.nbytes = _wire_size(out)
    return out


def unpack_tally(packed: PackedTally) -> NegativeTally:
    """The :class:`NegativeTally` of a :class:`PackedTally`."""
    return NegativeTally(packed.k, {g: _unpack_counts(p, packed.k) for g, p in packed.groups.items()})


# --------------------------------------------------------------------------- tasks (run on workers)


class _LogCapture(logging.Handler):
    """Warnings of the ``eval`` loggers emitted by this thread (a worker may run several tasks)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append((record.name, record.levelno, record.getMessage()))


@contextmanager
def _captured_logs() -> Iterator[list[tuple[str, int, str]]]:
    handler = _LogCapture()
    logger = logging.getLogger("threecad.eval")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def _file_size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def truth_task(rows: list[dict[str, Any]], protocol: Protocol) -> TruthChunk:
    """Pass 0: the ground truth of a chunk of manifest rows (reads their masks)."""
    with _captured_logs() as logs:
        truths = [image_truth(row, protocol) for row in rows]
    mask_bytes = sum(_file_size(p) for row in rows for p in row["mask_paths"] or ())
    return TruthChunk(truths, list(logs), mask_bytes)


def _without_flat(truth: ImageTruth) -> ImageTruth:
    if truth.positives is None:
        return truth
    return replace(truth, positives=replace(truth.positives, flat_index=_EMPTY_FLAT))


def summary_task(truth: TruthChunk) -> TruthSummary:
    """The ground truth of a chunk without its flat indices (sent to the client once)."""
    out = TruthSummary([_without_flat(t) for t in truth.truths])
    out.nbytes = _wire_size(out)
    return out


def pass1_task(truth: TruthChunk, paths: Sequence[str], scores: Sequence[float | None],
               protocol: Protocol) -> Pass1Chunk:
    """Pass 1 of a chunk: read and check each map, score it against its ground truth."""
    items: list[Any] = []
    map_bytes = 0
    with _captured_logs() as logs:
        for t, path, score in zip(truth.truths, paths, scores):
            result, problems = pass1_image(Path(path), t, score, protocol)
            if result is None:
                items.append(problems[0])
                continue
            map_bytes += _file_size(path)
            items.append(result[1])
    out = Pass1Chunk(items, list(truth.logs) + list(logs), map_bytes)
    out.nbytes = _wire_size(out)
    return out


def pass2_task(truth: TruthChunk, paths: Sequence[str], groups: Sequence[int], protocol: Protocol,
               index: PositiveIndex) -> PackedTally:
    """Pass 2 of a chunk: count its normal pixels against the category's positive index."""
    stats = PixelStats()
    tally = NegativeTally(index.size, index=index)  # keeps every group's counts: they travel back
    map_bytes = 0
    for t, path, group in zip(truth.truths, paths, groups):
        amap = read_map(Path(path))
        map_bytes += _file_size(path)
        stats.add_negatives(tally, map_on_grid(amap, t.shape, protocol), t.positives.flat_index, group=group)
    return pack_tally(tally, tasks=1, map_bytes=map_bytes)


def sum_task(a: PackedTally, b: PackedTally) -> PackedTally:
    """One node of the reduction tree: the sum of two tallies (exact integers)."""
    ta, tb = unpack_tally(a), unpack_tally(b)
    for g, c in tb.counts.items():
        if g in ta.counts:
            ta.counts[g] += c
        else:
            ta.counts[g] = c
    return pack_tally(ta, sent=a.sent + b.sent + a.nbytes + b.nbytes, tasks=a.tasks + b.tasks,
                      sum_tasks=a.sum_tasks + b.sum_tasks + 1, map_bytes=a.map_bytes + b.map_bytes)


def _worker_check(paths: Sequence[str]) -> dict[str, Any]:
    from threecad import __version__

    return {"version": __version__, "missing": [p for p in paths if not os.path.isdir(p)]}


# --------------------------------------------------------------------------- the client side


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of about ``size`` rows each, as even as possible, in order."""
    k = max(1, math.ceil(n / max(1, size)))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k) if bounds[i + 1] > bounds[i]]


def truth_digest(data_root: str, rows: list[dict[str, Any]], protocol: Protocol, chunk_size: int) -> str:
    """Names a category's ground truth on a protocol grid: data root, threecad version,
    protocol, chunking, and every test image's key, label, types, size and mask files
    (path, size, modification time): a changed mask gets a new name."""
    from threecad import __version__

    h = hashlib.sha256()
    h.update(json.dumps([__version__, str(data_root), protocol.to_dict(), chunk_size], sort_keys=True,
                        default=str).encode())
    for r in rows:
        masks = []
        for p in r["mask_paths"] or ():
            try:
                st = os.stat(p)
                masks.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                masks.append(f"{p}:missing")
        h.update(f"\n{r['image_id']}\t{r['label']}\t{','.join(sorted(r['defect_types'] or ()))}\t"
                 f"{r['height']}x{r['width']}\t{'|'.join(masks)}".encode())
    return h.hexdigest()


@dataclass
class _CategoryTruth:
    folder: str
    name: str                              # published name / key prefix
    rows: list[dict[str, Any]]
    spans: list[tuple[int, int]]
    futures: list[Any]
    new: bool                              # submitted by this scorer (not found published)
    summary: list[TruthSummary | None] = field(default_factory=list)   # fetched once


@dataclass
class _Running:
    """One category while a submission is scored."""

    folder: str
    truth: _CategoryTruth
    pass1: list[Pass1Chunk | None]
    builder: CategoryBuilder | None = None
    total: PackedTally | None = None
    index: Any = None                      # the scattered PositiveIndex (a future)
    chunk_groups: list[list[int]] = field(default_factory=list)
    futures: list[Any] = field(default_factory=list)   # pass 2 and sums of the current attempt
    root: str | None = None                # key of the current attempt's total
    attempt: int = 0
    complete: bool = False
    problems: list[Problem] = field(default_factory=list)


class DistributedScorer:
    """Scores submissions on a Dask cluster against one ground truth, reusing it.

    Parameters
    ----------
    client : distributed.Client
        Connected to the cluster. Its workers must see the dataset and the submissions
        under the same paths as this process, and run the same threecad version.
    manifest : ScanResult or pandas.DataFrame
        The dataset (``threecad.manifest.scan(root)``); only ``split == "test"`` rows
        are used.
    protocol : Protocol
        :func:`eval.protocols.get_protocol`.
    data_root : str or Path, optional
        Recorded in results.json and in the ground truth's name (default: the
        ScanResult's ``root``).
    chunk_size : int
        Images of one category per task (default :data:`DEFAULT_CHUNK_SIZE`).
    retries : int
        Dask retries of a task that raised (a task whose worker died is rerun anyway).
    progress : bool
        A progress bar over completed tasks on stderr.
    publish : bool
        Also publish the ground-truth futures on the scheduler, so that another client
        (a later ``threecad eval --scheduler`` run) finds them; :meth:`forget` drops them.
    on_progress : callable, optional
        Called in this process as ``on_progress(phase, category, chunk)`` after each
        completed task (``phase`` one of ``"truth"``, ``"summary"`` (the client's copy of
        the ground truth, once per dataset), ``"pass1"``, ``"pass2"``, ``"sum"``: the root
        of a category's reduction tree).

    Examples
    --------
    >>> scorer = DistributedScorer(client, scan(root), get_protocol("standard"))  # doctest: +SKIP
    >>> for preds in submissions:                                                  # doctest: +SKIP
    ...     results = scorer.score(load_submission(preds, scorer.manifest))
    """

    def __init__(self, client: Any, manifest: Any, protocol: Protocol, *, data_root: str | Path | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, retries: int = 2, progress: bool = False,
                 publish: bool = False, on_progress: Callable[[str, str, int], None] | None = None,
                 check_workers: bool = True) -> None:
        if chunk_size < 1:
            raise UsageError(f"chunk_size must be at least 1, got {chunk_size}")
        root = getattr(manifest, "root", None)
        if hasattr(manifest, "manifest") and not hasattr(manifest, "columns"):  # a ScanResult
            manifest = manifest.manifest
        self.client = client
        self.manifest = manifest
        self.protocol = protocol
        self.data_root = str(data_root if data_root is not None else root if root is not None else "")
        self.chunk_size = int(chunk_size)
        self.retries = int(retries)
        self.progress = progress
        self.publish = publish
        self.on_progress = on_progress
        self.truth_tasks_submitted = 0
        self.last_report: dict[str, Any] = {}
        self._test = manifest[manifest["split"] == "test"]
        self._truths: dict[str, _CategoryTruth] = {}
        if check_workers:
            self._check_workers([self.data_root] if self.data_root else [])

    # -- checks ---------------------------------------------------------------
    def _check_workers(self, paths: list[str]) -> None:
        """Workers present, same threecad version, and the given folders visible to each."""
        from threecad import __version__

        if not self.client.scheduler_info().get("workers"):
            try:
                self.client.wait_for_workers(1, timeout=60)
            except Exception as exc:  # noqa: BLE001 - dask raises TimeoutError variants
                raise UsageError(f"the Dask cluster has no worker ({exc})") from None
        try:
            answers = self.client.run(_worker_check, paths)
        except Exception as exc:  # noqa: BLE001 - e.g. threecad not importable on a worker
            raise UsageError(f"the Dask workers cannot run threecad ({type(exc).__name__}: {exc}); install "
                             f"threecad {__version__} in the workers' environment") from None
        bad = {w: a["version"] for w, a in answers.items() if a["version"] != __version__}
        if bad:
            raise UsageError(f"the Dask workers must run threecad {__version__}; "
                             + ", ".join(f"{w} has {v}" for w, v in sorted(bad.items())))
        blind = {w: a["missing"] for w, a in answers.items() if a["missing"]}
        if blind:
            raise UsageError("the Dask workers must see the data under the same paths as this process; "
                             + "; ".join(f"{w} cannot see {', '.join(m)}" for w, m in sorted(blind.items())))

    # -- ground truth -----------------------------------------------------------
    def _truth(self, folder: str) -> _CategoryTruth:
        """The ground-truth futures of a category: held, found published, or submitted now."""
        held = self._truths.get(folder)
        if held is not None:
            return held
        rows = self._test[self._test["category"] == folder].to_dict("records")
        spans = _chunks(len(rows), self.chunk_size)
        digest = truth_digest(self.data_root, rows, self.protocol, self.chunk_size)
        name = f"threecad-gt-{folder}-{digest[:20]}"
        futures = None
        if self.publish:
            found = self.client.get_dataset(name, default=None)
            if found is not None and len(found) == len(spans) and not any(f.status == "error" for f in found):
                futures = list(found)
                log.info("ground truth of %s found on the cluster (%s)", folder, name)
        new = futures is None
        if new:
            futures = [self.client.submit(truth_task, rows[a:b], self.protocol, key=f"{name}-{i}",
                                          retries=self.retries, pure=False)
                       for i, (a, b) in enumerate(spans)]
            self.truth_tasks_submitted += len(futures)
            if self.publish:
                self.client.publish_dataset(futures, name=name, override=True)
        held = self._truths[folder] = _CategoryTruth(folder, name, rows, spans, futures, new)
        return held

    def forget(self) -> None:
        """Drop the ground truth held (and published) by this scorer from the cluster."""
        for t in self._truths.values():
            if self.publish:
                try:
                    self.client.unpublish_dataset(t.name)
                except KeyError:
                    pass
        self._truths.clear()

    # -- scoring ----------------------------------------------------------------
    def score(self, submission: Submission, *, command: Sequence[str] | None = None) -> "Results":
        """Score ``submission``: its :class:`eval.results.Results` (without the per-image maxima)."""
        from .results import Results

        evaluations = self.evaluate(submission)
        return Results.build(submission, evaluations, self.protocol, data_root=self.data_root, command=command)

    def evaluate(self, submission: Submission) -> list[CategoryEvaluation]:
        """Like :func:`eval.evaluate.evaluate_submission`, on the cluster (identical result).

        Pass 0 (the ground truth, where not held) and pass 1 of every category are submitted
        at once; a category's pass 2 follows as soon as its pass 1 is complete and no problem
        is known (:class:`_ClusterRun` follows the tasks).

        Raises
        ------
        SubmissionError
            Every problem found in pass 1 over all categories (nothing is scored).
        ClusterError
            A task could not be completed (e.g. the workers kept dying while running it).
        """
        self._check_workers([str(submission.root)])
        job = _ClusterRun(self, submission)
        try:
            for folder in job.order:
                job.submit_category(folder)
            for fut in job.pending:
                job.handle(fut)
            if job.found_problem:
                raise submission_error(submission, [p for f in job.order for p in job.running[f].problems])
        except BaseException:
            job.cancel_all()
            raise
        finally:
            job.bar.close()
        evaluations = job.collect()
        self.last_report = job.report
        log.info("cluster: %s", job.report)
        return evaluations

    def _raise_task_error(self, fut: Any, phase: str, folder: str, chunk: int) -> None:
        from distributed import KilledWorker

        try:
            fut.result()
        except KilledWorker as exc:
            raise ClusterError(f"{phase} of {folder} (chunk {chunk}) could not be completed: workers died "
                               f"running it ({exc})") from exc
        except Exception as exc:
            if fut.status == "cancelled":
                raise ClusterError(f"{phase} of {folder} (chunk {chunk}) was cancelled on the cluster "
                                   f"({exc})") from exc
            raise
        raise ClusterError(f"{phase} of {folder} (chunk {chunk}) ended as {fut.status}")

    def _scatter(self, value: Any) -> Any:
        """``client.scatter(value, broadcast=True)``, tried again while workers come and go."""
        import time

        for attempt in range(10):
            try:
                # with a timeout: a scatter to a worker that was killed but not yet removed by the
                # scheduler would otherwise wait for ever
                return self.client.scatter(value, broadcast=True, hash=False, timeout=SCATTER_TIMEOUT_S)
            except OSError as exc:  # CommClosedError or TimeoutError: a worker died during the scatter
                if attempt == 9:
                    raise ClusterError(f"cannot send the positive index to the workers ({exc})") from exc
                log.info("scatter failed (%s); trying again", exc)
                time.sleep(0.2 * (attempt + 1))
                self.client.wait_for_workers(1, timeout=60)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare_pass2(self, run: _Running) -> None:
        """Add the category's images in manifest order (as one process does) and build its index."""
        builder = run.builder = CategoryBuilder(run.folder)
        run.chunk_groups = []
        for res, summary in zip(run.pass1, run.truth.summary):
            groups = []
            for t, scored in zip(summary.truths, res.items):  # no Problem here: checked before
                groups.append(builder.group_of(t))
                builder.add(t, scored, keep_flat=False)
            run.chunk_groups.append(groups)
        run.pass1 = []  # the per-pixel data of pass 1 now lives in the PixelStats
        builder.evaluation.pixels.finalize_positives(type_breakdowns(builder.evaluation.groups).values())

    def _submit_pass2(self, run: _Running, submission: Submission, token: str, track,
                      report: dict[str, Any]) -> None:
        """Scatter the category's index to every worker, submit pass 2 and the tree of sums."""
        client, truth = self.client, run.truth
        index = run.builder.evaluation.pixels.index
        # one copy per worker, sent once; held (run.index) until the category's total is in
        index_future = run.index = self._scatter(index)
        report["index_bytes"] += _wire_size(index)
        tag = f"{token}-{run.folder}" + (f"-retry{run.attempt}" if run.attempt else "")
        level = []
        for i, (a, b) in enumerate(truth.spans):
            paths = [str(submission.maps[r["image_id"]]) for r in truth.rows[a:b]]
            fut = client.submit(pass2_task, truth.futures[i], paths, run.chunk_groups[i], self.protocol,
                                index_future, key=f"threecad-pass2-{tag}-{i}", retries=self.retries, priority=1)
            track(fut, "pass2", run.folder, i, run.attempt)
            level.append(fut)
        futures = list(level)
        depth = 0
        while len(level) > 1:  # pairwise sums: a tree on the cluster, one total comes back
            depth += 1
            nxt = [client.submit(sum_task, level[j], level[j + 1], retries=self.retries, priority=2,
                                 key=f"threecad-sum-{tag}-{depth}-{j // 2}")
                   for j in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            futures.extend(nxt)
            level = nxt
        run.root = level[0].key
        run.futures = futures
        if len(futures) > 1:  # else the root is the single pass-2 task, tracked already
            track(level[0], "sum", run.folder, 0, run.attempt)


class _ClusterRun:
    """One submission being scored on the cluster: its tasks, their completion, the traffic report."""

    def __init__(self, scorer: DistributedScorer, submission: Submission) -> None:
        from distributed import as_completed
        from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

        self.scorer = scorer
        self.client = scorer.client
        self.submission = submission
        self.token = uuid.uuid4().hex[:10]
        self.order = list(submission.categories)
        self.running: dict[str, _Running] = {}
        self.phases: dict[str, tuple[str, str, int, int]] = {}   # key -> (phase, category, chunk, attempt)
        self.pending = as_completed()
        self.submitted: list[Any] = []   # pass-1 and summary futures (cancelled if this run fails)
        self.found_problem = False
        self.bar = tqdm(total=0, desc="scoring on the cluster", unit="task", file=sys.stderr,
                        disable=not scorer.progress, leave=False)
        self.report: dict[str, Any] = {
            "chunk_size": scorer.chunk_size, "categories": len(self.order), "truth_tasks": 0, "pass1_tasks": 0,
            "pass1_result_bytes": 0, "pass1_map_bytes": 0, "summary_bytes": 0, "index_bytes": 0, "pass2_tasks": 0,
            "sum_tasks": 0, "pass2_result_bytes": 0, "pass2_map_bytes": 0, "pass2_restarts": 0}

    def track(self, fut: Any, phase: str, folder: str, chunk: int, attempt: int = 0) -> None:
        """Follow ``fut`` until it completes."""
        self.phases[fut.key] = (phase, folder, chunk, attempt)
        self.pending.add(fut)
        self.bar.total += 1
        if phase in ("pass1", "summary"):
            self.submitted.append(fut)

    def cancel_pass2(self, runs: Iterable[_Running]) -> None:
        """Cancel the pass-2 and sum tasks of ``runs`` still running."""
        self.client.cancel([f for r in runs for f in r.futures if not f.done()])

    def cancel_all(self) -> None:
        """Cancel every task of this run still running (it failed or was interrupted)."""
        self.cancel_pass2(self.running.values())
        self.client.cancel([f for f in self.submitted if not f.done()])

    def submit_category(self, folder: str) -> None:
        """Pass 0 where needed, the ground truth's summary where not fetched yet, and pass 1."""
        scorer, client, submission = self.scorer, self.client, self.submission
        truth = scorer._truth(folder)
        self.running[folder] = _Running(folder, truth, [None] * len(truth.spans))
        if truth.new:
            truth.new = False
            self.report["truth_tasks"] += len(truth.futures)
            for i, fut in enumerate(truth.futures):
                self.track(fut, "truth", folder, i)
        if not truth.summary:  # what the client keeps of the ground truth: fetched once
            truth.summary = [None] * len(truth.spans)
        for i, tf in enumerate(truth.futures):
            if truth.summary[i] is None:
                self.track(client.submit(summary_task, tf, key=f"threecad-summary-{self.token}-{folder}-{i}",
                                         retries=scorer.retries, priority=1), "summary", folder, i)
        for i, (a, b) in enumerate(truth.spans):
            ids = [r["image_id"] for r in truth.rows[a:b]]
            scores = [submission.scores[k] for k in ids] if submission.scores is not None else [None] * len(ids)
            fut = client.submit(pass1_task, truth.futures[i], [str(submission.maps[k]) for k in ids], scores,
                                scorer.protocol, key=f"threecad-pass1-{self.token}-{folder}-{i}",
                                retries=scorer.retries)
            self.track(fut, "pass1", folder, i)

    def handle(self, fut: Any) -> None:
        """One completed task."""
        phase, folder, chunk, attempt = self.phases[fut.key]
        run = self.running[folder]
        counting = phase in ("pass2", "sum")
        if counting and (attempt != run.attempt or self.found_problem):
            return  # superseded by a new attempt, or cancelled: nothing will be scored
        if fut.status != "finished":
            self._failed(fut, run, phase, chunk)
            return
        if phase in ("pass1", "summary"):
            self._pass1_done(fut, run, phase, chunk)
        if fut.key == run.root:
            run.total = fut.result()
            run.index = None
            run.futures = []
        self.bar.update(1)
        if self.scorer.on_progress is not None:
            self.scorer.on_progress(phase, folder, chunk)

    def _failed(self, fut: Any, run: _Running, phase: str, chunk: int) -> None:
        """Count a category again when pass 2 lost its data; else raise the task's error."""
        if phase in ("pass2", "sum") and fut.status == "cancelled" and run.attempt < self.scorer.retries:
            # Data that cannot be recomputed is gone (every copy of the scattered index was on
            # workers that died): count this category again.
            log.warning("pass 2 of %s lost its data on the cluster (%s); counting it again", run.folder, fut.key)
            self.cancel_pass2([run])
            run.attempt += 1
            self.report["pass2_restarts"] += 1
            self.scorer._submit_pass2(run, self.submission, self.token, self.track, self.report)
            return
        if phase in ("truth", "summary", "pass1"):  # the ground truth may be at fault:
            self.scorer._truths.pop(run.folder, None)  # compute it again next time
        self.scorer._raise_task_error(fut, phase, run.folder, chunk)

    def _pass1_done(self, fut: Any, run: _Running, phase: str, chunk: int) -> None:
        """Keep a pass-1 or summary result; start pass 2 of every category whose pass 1 is complete."""
        res = fut.result()
        fut.release()
        if phase == "summary":
            run.truth.summary[chunk] = res
            self.report["summary_bytes"] += res.nbytes
        else:
            run.pass1[chunk] = res
            self.report["pass1_tasks"] += 1
            self.report["pass1_result_bytes"] += res.nbytes
            self.report["pass1_map_bytes"] += res.map_bytes
        if not run.complete and all(c is not None for c in (*run.pass1, *run.truth.summary)):
            run.complete = True
            run.problems = [p for c in run.pass1 for p in c.items if isinstance(p, Problem)]
            for c in run.pass1:
                for name, level, message in c.logs:
                    logging.getLogger(name).log(level, "%s", message)
            if run.problems and not self.found_problem:
                self.found_problem = True
                self.cancel_pass2(self.running.values())
        # pass 2 of each category as soon as its pass 1 is complete, while no problem is known
        for r in self.running.values():
            if r.complete and r.builder is None and not self.found_problem:
                self.scorer._prepare_pass2(r)
                self.scorer._submit_pass2(r, self.submission, self.token, self.track, self.report)

    def collect(self) -> list[CategoryEvaluation]:
        """Every category's evaluation, its pass-2 total merged in, in the submission's order."""
        evaluations = []
        for folder in self.order:
            run = self.running[folder]
            assert run.builder is not None and run.total is not None
            ev = run.builder.evaluation
            ev.pixels.merge(unpack_tally(run.total))
            self.report["pass2_tasks"] += run.total.tasks
            self.report["sum_tasks"] += run.total.sum_tasks
            self.report["pass2_map_bytes"] += run.total.map_bytes
            self.report["pass2_result_bytes"] += run.total.sent + run.total.nbytes  # every leaf and sum result
            evaluations.append(ev)
        return evaluations


# --------------------------------------------------------------------------- connecting


def local_cluster(n_workers: int, *, memory_limit: str | float | None = "auto", **kwargs: Any) -> Any:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes on 127.0.0.1
    (no dashboard; ``kwargs`` override any option).

    Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536``; setting it freezes
    glibc's mmap threshold at 128 kB, so every larger array is mapped and unmapped again:
    these tasks, which allocate many such arrays, then ran 1.3x (one worker) to 1.9x (two)
    slower on the development machine. It is left unset here (unless this process's
    environment sets it).
    """
    import dask
    from distributed import LocalCluster

    options = dict(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                   dashboard_address=None, memory_limit=memory_limit, silence_logs=logging.ERROR,
                   # no dashboard; the scheduler's small HTTP server on a free port, not 8787
                   scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
    options.update(kwargs)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**options)


@contextmanager
def cluster_client(*, scheduler: str | None = None, n_workers: int | None = None,
                   memory_limit: str | None = "auto") -> Iterator[Any]:
    """A Dask client: connected to ``scheduler``, or to a new :func:`local_cluster` of
    ``n_workers`` processes (closed on exit)."""
    require_dask()
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        with client:
            yield client
        return
    if not n_workers or n_workers < 1:
        raise UsageError(f"a local Dask cluster needs at least 1 worker, got {n_workers}")
    logger = logging.getLogger("distributed")
    level = logger.level
    try:
        with local_cluster(n_workers, memory_limit=memory_limit) as cluster, Client(cluster) as client:
            try:
                yield client
            finally:
                _quiet_teardown(client)
    finally:
        logger.setLevel(level)


def _silence_distributed() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _quiet_teardown(client: Any) -> None:
    """Closing a local cluster races heartbeats against the scheduler's exit; the work is
    done by then, so what its processes would log while closing is noise: silence it."""
    try:
        client.run(_silence_distributed)
    except Exception:  # noqa: BLE001 - best effort: the cluster may be going already
        pass
    _silence_distributed()
