"""``threecad demo``: the main job on the built-in sample."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import __version__
from ..paths import default_cache_dir
from ..stats import render, summarise
from ._common import show_progress
from .stats import collect_stats


def ensure_sample(cache_dir: Path, *, seed: int, scale: str) -> Path:
    """The sample tree for (version, seed, scale), built once; building is atomic."""
    from ..sample import write_sample

    root = cache_dir / f"sample-{__version__}-{scale}-seed{seed}"
    if root.is_dir() and any(root.iterdir()):
        print(f"using the cached sample at {root}", file=sys.stderr)
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"building the sample ({scale}, seed {seed}) at {root} ...", file=sys.stderr)
    write_sample(root, seed=seed, scale=scale)
    return root


def ensure_submission(cache_dir: Path, root: Path, manifest, *, seed: int) -> Path:
    """The training-free PatchKNN baseline's submission for the sample (fitted on its train/good
    images, maps of its test images), written once; writing is atomic."""
    from threecad.reference_models.patchknn import PatchKNNConfig
    from threecad.reference_models.patchknn.predict import fit_predict_submission

    preds = cache_dir / f"{root.name}-patchknn"
    if (preds / "submission.json").is_file():
        return preds
    print("fitting the training-free PatchKNN baseline on train/good and predicting the test images ...",
          file=sys.stderr)
    fit_predict_submission(manifest, preds, config=PatchKNNConfig(seed=seed))
    return preds


def run(args) -> int:
    """Run the command; return the exit code."""
    from threecad.eval.results import render_tables, write_results

    from .eval import score_submission

    cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    root = ensure_sample(cache, seed=args.seed, scale=args.scale)
    progress = show_progress(args)
    _, stats = collect_stats(root, progress=progress)
    summary = summarise(stats.images)
    print(f"\n3CAD sample at {root}: {len(stats.images)} images, {len(stats.regions)} regions\n")
    sys.stdout.write(render(summary, "table"))

    preds = ensure_submission(cache, root, stats.images, seed=args.seed)
    print(f"\nScoring the training-free PatchKNN baseline's submission ({preds}):\n")
    for protocol in ("standard", "paper"):
        results = score_submission(preds, root, protocol_name=protocol, progress=progress,
                                   command=["threecad", "demo"])
        write_results(results, preds / "results" / protocol)
        sys.stdout.write(render_tables(results, markdown=False) + "\n")
    print(f"Results files: {preds / 'results'}")
    print("Next: 'threecad stats ROOT --plots DIR', 'threecad eval PREDS --data-root ROOT', "
          "'threecad train --model cfrg ...' (see README.md for every command).")
    return 0
