"""Fit PatchKNN per category on ``train/good`` and write a submission for the test images."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..submission import SubmissionWriter, check_target
from .config import PatchKNNConfig
from .model import PatchKNN

__all__ = ["fit_predict_submission"]

log = logging.getLogger(__name__)


def fit_predict_submission(manifest: Any, out: str | Path, *, config: PatchKNNConfig | None = None,
                           workers: int | None = None, progress: bool = False) -> Path:
    """Fit one PatchKNN per category of ``manifest`` and write the submission to ``out``.

    All images go through one pool of ``workers`` threads, which never waits for a category to
    finish: while the calling thread builds a category's index, the pool already decodes the
    next category's training images and still scores the previous category's test images.
    The maps do not depend on ``workers``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows (:func:`threecad.manifest.scan`) with the categories' train and test images.
    out : path
        The submission folder (written atomically; an existing submission there is replaced).
    config : PatchKNNConfig, optional
    workers : int, optional
        Threads decoding and scoring images (None or 0: all CPUs).
    progress : bool
        One progress phase over every training and test image, on standard error.

    Returns
    -------
    Path
        ``out``.
    """
    from threecad.progress import progress as progress_bar

    from ..images import read_rgb

    config = config or PatchKNNConfig()
    if workers is not None and workers < 0:  # as threecad.parallel.thread_map: 0 or None is all CPUs
        raise ValueError(f"workers must be at least 1 (or None for all CPUs), got {workers}")
    check_target(out)
    start = time.perf_counter()
    meta = {"method": "PatchKNN (training-free baseline)", "team": "threecad reference_models",
            "model": "patchknn", "config": config.to_dict(),
            "description": "nearest-neighbour distance of hand-made patch features to the train/good patches"}
    jobs = []  # (category, train/good paths, test rows), categories with test images only
    for category, rows in manifest.groupby("category", sort=False):
        test = rows[rows["split"] == "test"]
        if not test.empty:
            train = rows[(rows["split"] == "train") & (rows["label"] == "good")]
            jobs.append((category, train["image_path"].tolist(), list(test.itertuples())))
    n_images = sum(len(train) + len(test) for _, train, test in jobs)
    reader = PatchKNN(config)  # its image_features only needs the config

    with SubmissionWriter(out, meta) as writer, progress_bar(n_images, "PatchKNN", unit="img",
                                                              enabled=progress) as bar:
        lock = threading.Lock()
        pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)

        def submit(fn: Callable[..., Any], *args: Any) -> Future:
            future = pool.submit(fn, *args)
            future.add_done_callback(lambda _: _locked_update(bar, lock))
            return future

        def score(model: PatchKNN, row: Any) -> None:  # each map is written as soon as it is computed
            writer.add(row, model.anomaly_map(read_rgb(row.image_path, config.image_size)))

        try:
            queued_train = [submit(reader.image_features, p) for p in jobs[0][1]] if jobs else []
            scoring: list[Future] = []
            for i, (_, _, test) in enumerate(jobs):
                feats = [f.result() for f in queued_train]
                # the next category's training images are decoded while this one's index is built
                if i + 1 < len(jobs):
                    queued_train = [submit(reader.image_features, p) for p in jobs[i + 1][1]]
                model = PatchKNN(config).fit_features(feats)
                scoring = _pending(scoring) + [submit(score, model, row) for row in test]
            for f in scoring:
                f.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    log.info("PatchKNN: %d test maps in %.1f s", sum(len(test) for *_, test in jobs), time.perf_counter() - start)
    return Path(out)


def _locked_update(bar: Any, lock: threading.Lock) -> None:
    with lock:
        bar.update()


def _pending(futures: list[Future]) -> list[Future]:
    """The futures not done yet; raises the error of a failed one (so a bad image stops the run early)."""
    pending = []
    for f in futures:
        if f.done():
            f.result()
        else:
            pending.append(f)
    return pending
