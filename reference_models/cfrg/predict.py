"""CFRG inference: one anomaly map per test image, written as a submission.

Batched, decoding in data-loader workers, bf16 autocast and channels-last on CUDA, the map
(recovery discrepancy plus segmentation, float64, SciPy's Gaussian: :mod:`.maps`) computed on
the device; maps leave the device at the model's resolution (the evaluator resizes them) and are
written by a small thread pool while the next batch runs. The image score is the maximum of the
float64 map, as in the authors' code; the stored map is float16 (the submission format).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from threecad.errors import DataError, UsageError

from ..submission import SubmissionWriter, check_target
from .checkpoint import MODEL_KEYS, file_sha256, load_checkpoint
from .data import image_loader, normalise
from .maps import anomaly_maps
from .train import MODEL_FILE, autocast, model_from_checkpoint

__all__ = ["find_checkpoints", "predict_submission", "predict_maps"]

log = logging.getLogger(__name__)


def find_checkpoints(weights: str | Path, categories: list[str]) -> dict[str, Path]:
    """The checkpoint of each category: ``weights`` itself (a file, for one category), or
    ``weights/<Category>/model.pt`` (a folder written by ``threecad train --all-categories``),
    or ``weights/model.pt``.

    Raises
    ------
    UsageError
        A category has no checkpoint.
    """
    weights = Path(weights).expanduser()
    if weights.is_file():
        if len(categories) != 1:
            raise UsageError(f"--weights {weights} is one checkpoint but {len(categories)} categories are to be "
                             f"predicted; pass --categories NAME or a folder of per-category checkpoints")
        return {categories[0]: weights}
    if not weights.is_dir():
        raise UsageError(f"--weights {weights}: no such file or folder")
    found: dict[str, Path] = {}
    missing = []
    for cat in categories:
        for cand in (weights / cat / MODEL_FILE, weights / MODEL_FILE if len(categories) == 1 else None):
            if cand is not None and cand.is_file():
                found[cat] = cand
                break
        else:
            missing.append(cat)
    if missing:
        raise UsageError(f"--weights {weights}: no {MODEL_FILE} for {', '.join(missing)} (expected "
                         f"{weights}/<Category>/{MODEL_FILE}; train with 'threecad train --model cfrg')")
    return found


def _check_all(checkpoints: dict[str, Path]) -> None:
    """Every checkpoint readable and complete, or one error listing every bad file (before any work)."""
    problems = []
    for path in checkpoints.values():
        try:
            load_checkpoint(path, need=MODEL_KEYS, mmap=True)
        except (DataError, UsageError) as exc:
            problems.append(str(exc))
    if problems:
        raise DataError("\n".join(problems))


@torch.no_grad()
def predict_maps(model: Any, config: Any, paths: list[str], *, device: torch.device, batch_size: int,
                 workers: int | None = None, progress: bool = False, desc: str = ""):
    """Yield ``(index, map float64 ndarray (S, S))`` for ``paths`` in batches."""
    from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

    loader = image_loader(paths, config.image_size, batch_size=batch_size, workers=workers,
                          pin_memory=device.type == "cuda")
    channels_last = device.type == "cuda" and config.channels_last
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch, idx in loader:
            x = normalise(batch.to(device, non_blocking=True).float() / 255.0, channels_last=channels_last)
            with autocast(device, config):
                out = model(x)
            maps = anomaly_maps(out, config.image_size, config.smooth_sigma).cpu().numpy()
            for i, amap in zip(idx.tolist(), maps):
                yield i, amap
            bar.update(len(idx))


def predict_submission(manifest: Any, checkpoints: dict[str, Path], out: str | Path, *, device: torch.device,
                       batch_size: int = 16, workers: int | None = None, progress: bool = False) -> Path:
    """Write the submission of CFRG maps for the test images of ``manifest``'s categories.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows; the test images of every category in ``checkpoints`` are predicted.
    checkpoints : dict
        Category folder name -> ``model.pt``.
    out : path
        The submission folder (written atomically).

    Returns
    -------
    Path
        ``out``.
    """
    check_target(out)
    _check_all(checkpoints)
    start = time.perf_counter()
    meta: dict[str, Any] = {"method": "CFRG (threecad reference implementation)", "team": "threecad reference_models",
                            "model": "cfrg", "checkpoints": {}, "config": None}
    untrained = []
    n_maps = 0
    with SubmissionWriter(out, meta) as writer, ThreadPoolExecutor(max_workers=4) as pool:
        for category, path in checkpoints.items():
            test = manifest[(manifest["category"] == category) & (manifest["split"] == "test")]
            if test.empty:
                raise UsageError(f"no test images of {category} in the tree")
            ckpt = load_checkpoint(path, need=MODEL_KEYS)
            model, config = model_from_checkpoint(ckpt, device)
            info = ckpt.get("teacher_info", {})
            if not info.get("pretrained", False):
                untrained.append(category)
            meta["checkpoints"][category] = {
                "file": str(Path(path).resolve()), "sha256": file_sha256(path), "epoch": int(ckpt.get("epoch", 0)),
                "complete": bool(ckpt.get("complete", False)), "selection": {
                    k: v for k, v in ckpt.get("selection", {}).items() if k != "history"},
                "teacher": info}
            meta["config"] = config.to_dict()
            rows = list(test.itertuples())
            futures = []
            for i, amap in predict_maps(model, config, [r.image_path for r in rows], device=device,
                                        batch_size=batch_size, workers=workers, progress=progress, desc=category):
                futures.append(pool.submit(writer.add, rows[i], amap))
            for f in futures:
                f.result()
            n_maps += len(rows)
            del model
        if untrained:
            meta["method"] += " [UNTRAINED TEACHER: smoke run only, not a result]"
            meta["warning"] = f"untrained teacher (--teacher-weights none) for {', '.join(untrained)}"
            log.warning("the checkpoints of %s have an untrained teacher: the maps are for smoke tests only",
                        ", ".join(untrained))
        writer.meta.update(meta)
    elapsed = time.perf_counter() - start
    log.info("CFRG: %d maps in %.1f s (%.1f images/s, decoding included)", n_maps, elapsed, n_maps / max(elapsed, 1e-9))
    return Path(out)
