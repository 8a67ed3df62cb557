"""Fit PatchKNN per category on ``train/good`` and write a submission for the test images."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..submission import SubmissionWriter, check_target
from .config import PatchKNNConfig
from .model import PatchKNN

__all__ = ["fit_predict_submission"]

log = logging.getLogger(__name__)


def fit_predict_submission(manifest: Any, out: str | Path, *, config: PatchKNNConfig | None = None,
                           workers: int | None = None, progress: bool = False) -> Path:
    """Fit one PatchKNN per category of ``manifest`` and write the submission to ``out``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows (:func:`threecad.manifest.scan`) with the categories' train and test images.
    out : path
        The submission folder (written atomically; an existing submission there is replaced).
    config : PatchKNNConfig, optional
    workers : int, optional
        Threads decoding and scoring images.
    progress : bool
        A progress bar per category on standard error.

    Returns
    -------
    Path
        ``out``.
    """
    from threecad.parallel import thread_map

    from ..images import read_rgb

    config = config or PatchKNNConfig()
    check_target(out)
    start = time.perf_counter()
    meta = {"method": "PatchKNN (training-free baseline)", "team": "threecad reference_models",
            "model": "patchknn", "config": config.to_dict(),
            "description": "nearest-neighbour distance of hand-made patch features to the train/good patches"}
    n_test = 0
    with SubmissionWriter(out, meta) as writer:
        for category, rows in manifest.groupby("category", sort=False):
            train = rows[(rows["split"] == "train") & (rows["label"] == "good")]
            test = rows[rows["split"] == "test"]
            if test.empty:
                continue
            model = PatchKNN(config).fit(train["image_path"].tolist(), workers=workers, progress=progress)
            rows_list = list(test.itertuples())

            def one(row: Any, model: PatchKNN = model) -> None:
                writer.add(row, model.anomaly_map(read_rgb(row.image_path, config.image_size)))

            # each map is written as soon as it is computed: memory does not grow with the test set
            thread_map(one, rows_list, workers=workers, progress=progress, desc=category, unit="img")
            n_test += len(rows_list)
    log.info("PatchKNN: %d test maps in %.1f s", n_test, time.perf_counter() - start)
    return Path(out)
