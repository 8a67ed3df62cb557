"""``threecad demo``: the main job on the built-in sample."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import __version__
from ..paths import default_cache_dir
from ..stats import render, summarise
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
    """A synthetic submission for the sample (blurred ground truth plus structured noise)."""
    import shutil
    import tempfile

    from eval.synthetic import write_synthetic_submission

    preds = cache_dir / f"{root.name}-submission"
    if (preds / "submission.json").is_file():
        return preds
    tmp = Path(tempfile.mkdtemp(prefix=f".{preds.name}.", dir=cache_dir))
    try:
        write_synthetic_submission(manifest, tmp, seed=seed)
        shutil.rmtree(preds, ignore_errors=True)
        tmp.rename(preds)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return preds


def run(args) -> int:
    """Run the command; return the exit code."""
    from eval.results import render_tables, write_results

    from .eval import score_submission

    cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    root = ensure_sample(cache, seed=args.seed, scale=args.scale)
    progress = sys.stderr.isatty()
    _, stats = collect_stats(root, progress=progress)
    summary = summarise(stats.images)
    print(f"\n3CAD sample at {root}: {len(stats.images)} images, {len(stats.regions)} regions\n")
    sys.stdout.write(render(summary, "table"))

    preds = ensure_submission(cache, root, stats.images, seed=args.seed)
    print(f"\nScoring a synthetic submission ({preds}):\n")
    for protocol in ("standard", "paper"):
        results = score_submission(preds, root, protocol_name=protocol, progress=progress,
                                   command=["threecad", "demo"])
        write_results(results, preds / "results" / protocol)
        sys.stdout.write(render_tables(results, markdown=False) + "\n")
    print(f"Results files: {preds / 'results'}")
    print("Next: 'threecad stats ROOT --plots DIR', 'threecad eval PREDS --data-root ROOT' "
          "(see README.md for every command).")
    return 0
