"""Shared by the benchmark scripts: measure a fresh synthetic sample or an existing tree."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scale``, ``--seed``, ``--workers`` and ``--root``."""
    parser.add_argument("--scale", default="small", choices=("tiny", "demo", "small"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="threads (default: all CPUs)")
    parser.add_argument("--root", help="an existing tree to measure instead of a fresh sample")


def tree_to_measure(args: argparse.Namespace, tmp: str | Path) -> Path:
    """``--root`` when given, else a sample written into ``tmp`` (its build time printed)."""
    if args.root:
        return Path(args.root)
    from threecad.sample import write_sample

    root = Path(tmp) / "sample"
    t0 = time.perf_counter()
    write_sample(root, seed=args.seed, scale=args.scale)
    print(f"sample ({args.scale}, seed {args.seed}) built in {time.perf_counter() - t0:.1f} s")
    return root
