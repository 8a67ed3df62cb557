"""``threecad demo``: the main job on the built-in sample."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import __version__
from ..stats import render, summarise
from .stats import collect_stats


def default_cache_dir() -> Path:
    """``$THREECAD_CACHE``, else ``$XDG_CACHE_HOME/threecad``, else ``~/.cache/threecad``."""
    if os.environ.get("THREECAD_CACHE"):
        return Path(os.environ["THREECAD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "threecad"


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


def run(args) -> int:
    """Run the command; return the exit code."""
    cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    root = ensure_sample(cache, seed=args.seed, scale=args.scale)
    _, stats = collect_stats(root, progress=sys.stderr.isatty())
    summary = summarise(stats.images)
    print(f"\n3CAD sample at {root}: {len(stats.images)} images, {len(stats.regions)} regions\n")
    sys.stdout.write(render(summary, "table"))
    print("\nNext: 'threecad stats ROOT --plots DIR' on this or the real tree "
          "(see README.md for every command).")
    return 0
