"""``threecad train``: train a reference model (CFRG) per category. Imports torch only when run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..errors import UsageError
from ._common import data_root_from_args, show_progress

__all__ = ["run", "require_torch"]


def require_torch() -> None:
    """Stop with a usage error that says how to install the 'model' extra when torch is missing."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        raise UsageError("the reference models need PyTorch and torchvision: pip install 'threecad[model]'")


def run(args) -> int:
    """Run the command; return the exit code."""
    require_torch()
    from threecad.reference_models.cfrg.config import CFRGConfig
    from threecad.reference_models.cfrg.device import resolve_device
    from threecad.reference_models.cfrg.teacher import teacher_state_dict
    from threecad.reference_models.cfrg.train import LAST_FILE, Trainer

    from ..manifest import raise_on_errors, scan
    from ..splits import load_split

    if not args.category and not args.all_categories:
        raise UsageError("say which category to train: --category NAME (e.g. ACC) or --all-categories")
    for name in ("epochs", "batch_size", "max_steps", "image_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    root = data_root_from_args(args)
    scan_result = scan(root, categories=[args.category] if args.category else None)
    raise_on_errors(scan_result.problems, f"{scan_result.root} has problems")
    manifest = scan_result.manifest
    categories = [c.folder for c in scan_result.categories]
    device = resolve_device(args.device)
    config = CFRGConfig().with_overrides(epochs=args.epochs, batch_size=args.batch_size,
                                         image_size=getattr(args, "image_size", None))
    out = Path(args.out).expanduser()
    progress = show_progress(args)

    fresh = [c for c in categories if not (args.resume and (out / c / LAST_FILE).is_file())]
    if args.resume and fresh and len(fresh) == len(categories):
        raise UsageError(f"--resume: no {LAST_FILE} under {out}/<Category>/ to resume from")
    teacher_state, teacher_info = (None, {})
    if fresh:
        teacher_state, teacher_info = teacher_state_dict(args.teacher_weights, progress=progress)

    for category in categories:
        rows = manifest[manifest["category"] == category]
        if args.splits:
            train_rows = load_split(args.splits, "fit", root=root, categories=[category])
            val_rows = load_split(args.splits, "val", root=root, categories=[category])
        else:
            train_rows = rows[(rows["split"] == "train") & (rows["label"] == "good")]
            val_rows = None
        resume = category not in fresh
        print(f"training CFRG on {category}: {len(train_rows)} images"
              + (f", {len(val_rows)} for validation" if val_rows is not None and len(val_rows)
                 else ", no validation split (keeps the last model)")
              + (f", DTD textures from {args.dtd}" if args.dtd else ", procedural anomaly textures")
              + f", device {device}" + (" (resuming)" if resume else ""), file=sys.stderr)
        run_kw = dict(device=device, category=category, meta={"data_root": str(scan_result.root)},
                      workers=args.workers, progress=progress)
        if resume:
            trainer = Trainer.resume(out / category, epochs=args.epochs, **run_kw)
        else:
            trainer = Trainer(out / category, config, teacher_state=teacher_state, teacher_info=teacher_info,
                              seed=args.seed, **run_kw)
        result = trainer.fit(train_rows, val_rows, dtd=args.dtd, max_steps=args.max_steps)
        sel = result.selection
        chosen = (f"best validation pixel AUROC {sel['best_value']:.4f} at epoch {sel['best_epoch']}"
                  if sel.get("best_epoch") is not None else "the last model")
        print(f"{category}: {result.epochs_done} epoch(s), {result.steps} steps in {result.seconds:.1f} s "
              f"({result.images_per_s:.1f} images/s); {result.model_path} is {chosen}")
    print(f"Next: threecad predict --model cfrg --weights {out} --data-root {root} --out PREDS")
    return 0
