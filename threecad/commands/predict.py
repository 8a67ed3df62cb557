"""``threecad predict``: write a submission with a reference model (CFRG, or the PatchKNN baseline)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import UsageError
from ._common import categories_from_args, data_root_from_args, show_progress
from .train import require_torch

__all__ = ["run"]


def run(args) -> int:
    """Run the command; return the exit code."""
    from ..manifest import raise_on_errors, scan

    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    root = data_root_from_args(args)
    categories = categories_from_args(args)
    progress = show_progress(args)
    start = time.perf_counter()
    out = Path(args.out).expanduser()

    if args.model in ("baseline", "patchknn"):
        from threecad.reference_models.patchknn.predict import fit_predict_submission

        if args.weights:
            raise UsageError("the PatchKNN baseline fits itself on train/good; it takes no --weights")
        scan_result = scan(root, categories=categories)
        raise_on_errors(scan_result.problems, f"{scan_result.root} has problems")
        fit_predict_submission(scan_result.manifest, out, workers=getattr(args, "threads", None), progress=progress)
        n = int((scan_result.manifest["split"] == "test").sum())
        method = "PatchKNN baseline"
    else:
        require_torch()
        from threecad.reference_models.cfrg.checkpoint import MODEL_KEYS, load_checkpoint
        from threecad.reference_models.cfrg.device import resolve_device
        from threecad.reference_models.cfrg.predict import find_checkpoints, predict_submission

        if not args.weights:
            raise UsageError("--weights CKPT is needed: a model.pt from 'threecad train --model cfrg', or the "
                             "folder holding <Category>/model.pt")
        weights = Path(args.weights).expanduser()
        if categories is None and weights.is_file():
            categories = [load_checkpoint(weights, need=MODEL_KEYS, mmap=True).get("category") or ""]
            if not categories[0]:
                raise UsageError(f"{weights} names no category; pass --categories NAME")
        elif categories is None and weights.is_dir():
            categories = sorted(p.parent.name for p in weights.glob("*/model.pt")) or None
            if categories is None:
                raise UsageError(f"--weights {weights}: no <Category>/model.pt inside")
        scan_result = scan(root, categories=categories)
        raise_on_errors(scan_result.problems, f"{scan_result.root} has problems")
        folders = [c.folder for c in scan_result.categories]
        checkpoints = find_checkpoints(weights, folders)
        device = resolve_device(args.device)
        predict_submission(scan_result.manifest, checkpoints, out, device=device, batch_size=args.batch_size,
                           workers=args.workers, progress=progress)
        manifest = scan_result.manifest
        n = int(((manifest["split"] == "test") & manifest["category"].isin(folders)).sum())
        method = "CFRG"
    elapsed = time.perf_counter() - start
    print(f"{method}: wrote {n} maps, scores.csv and submission.json to {out} in {elapsed:.1f} s "
          f"({n / max(elapsed, 1e-9):.1f} images/s)", file=sys.stderr)
    print(f"Next: threecad eval {out} --data-root {root}")
    return 0
