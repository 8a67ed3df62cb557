#!/usr/bin/env python
"""Benchmark ``threecad validate`` on the synthetic sample (or any tree).

Prints images per second for :func:`threecad.validate.validate` and the ratio against a
naive reference measured in the same run: one thread; each image read, hashed with
hashlib.sha256 and fully decoded with Pillow; the same 256-bit DCT hash computed from that
decode; each mask decoded with Pillow; every pair of images of a category compared (Python
ints, ``bit_count``) instead of the multi-index. Both must find the same byte-identical groups and
the same near-duplicate pairs. Compare ratios, not absolute times: these machines are noisy.

Each is timed ``--repeat`` times after a warm-up run; the best time counts.
Also prints the distribution of perceptual-hash distances between distinct images of one
category (all pairs, computed once for the report), which is what the near-duplicate
threshold was chosen from.

    python scripts/bench_validate.py [--scale small] [--seed 0] [--workers N] [--root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _sample import add_sample_arguments, tree_to_measure


def naive_validate(manifest) -> dict[str, object]:
    """Reference: single thread, Pillow decode, hashlib, all-pairs Hamming comparison."""
    from PIL import Image

    from threecad.validate.duplicates import NEAR_DUPLICATE_THRESHOLD
    from threecad.validate.images import perceptual_hash

    sha: dict[str, list[str]] = {}
    digest: dict[str, str] = {}
    hashes: dict[str, list[tuple[tuple[int, str], int]]] = {}
    for rec in manifest[["image_id", "category", "split", "image_path"]].itertuples(index=False):
        data = Path(rec.image_path).read_bytes()
        digest[rec.image_id] = hashlib.sha256(data).hexdigest()
        sha.setdefault(digest[rec.image_id], []).append(rec.image_id)
        try:
            with Image.open(rec.image_path) as im:
                im.load()  # raises on a truncated file (LOAD_TRUNCATED_IMAGES is off by default)
                array = np.asarray(im)
        except (OSError, SyntaxError, ValueError):
            continue  # broken image: reported, not hashed
        if array.ndim == 3:
            array = np.ascontiguousarray(array[..., 2::-1] if array.shape[2] == 3 else array[..., [2, 1, 0, 3]])
        h = perceptual_hash(array)  # the same hash (RGB turned to OpenCV's BGR order first)
        key = (0 if rec.split == "train" else 1, rec.image_id)  # train first, as validate orders pairs
        hashes.setdefault(rec.category, []).append((key, int.from_bytes(h.tobytes(), "little")))
    for paths in manifest["mask_paths"]:
        for p in paths:
            try:
                with Image.open(p) as im:
                    np.unique(np.asarray(im))
            except (OSError, SyntaxError, ValueError):
                continue
    flagged = set()  # the later image of each near pair (byte-identical pairs excepted)
    distances = []
    for items in hashes.values():
        for (a, ha), (b, hb) in itertools.combinations(items, 2):
            if digest[a[1]] == digest[b[1]]:
                continue
            d = (ha ^ hb).bit_count()
            distances.append(d)
            if d <= NEAR_DUPLICATE_THRESHOLD:
                flagged.add(max(a, b)[1])
    dup_groups = sorted(sorted(v) for v in sha.values() if len(v) > 1)
    return {"duplicate_groups": dup_groups, "near_flagged": flagged,
            "distances": np.array(distances, dtype=np.int64)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sample_arguments(parser)
    parser.add_argument("--skip-naive", action="store_true", help="only time validate")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best counts (default 3)")
    args = parser.parse_args()

    from threecad.manifest import scan
    from threecad.validate import validate

    with tempfile.TemporaryDirectory() as tmp:
        root = tree_to_measure(args, tmp)

        validate(root, workers=args.workers)  # warm-up: imports, page cache
        t_ours = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = validate(root, workers=args.workers)
            t_ours = min(t_ours, time.perf_counter() - t0)
        n = report.summary["images"]
        workers = args.workers or os.cpu_count()
        print(f"validate: {n} images, {report.summary['masks']} masks, "
              f"{report.summary['bytes_read'] / 1e6:.0f} MB in {t_ours:.2f} s = {n / t_ours:.1f} images/s "
              f"({workers} threads; {report.summary['errors']} errors, {report.summary['warnings']} warnings)")
        nd = report.summary["near_duplicates"]
        print(f"  multi-index: {nd['pairs_compared']:,} candidate pairs vs {nd['all_pairs']:,} all pairs; "
              f"closest pairs exact up to {nd['closest_exact_up_to']} bits")
        print("  closest pairs: " + ", ".join(str(c.distance) for c in report.closest_pairs))

        if args.skip_naive:
            return 0
        manifest = scan(root, read_headers=False).manifest
        t_naive = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ref = naive_validate(manifest)
            t_naive = min(t_naive, time.perf_counter() - t0)
        print(f"naive reference: {t_naive:.2f} s = {n / t_naive:.1f} images/s")
        print(f"ratio: {t_naive / t_ours:.2f}x faster than the naive reference")

        ids = dict(zip(manifest["image_path"], manifest["image_id"]))
        ours_dups = sum(1 for p in report.problems if p.kind in ("duplicate", "leakage"))
        ours_near = {ids[str(p.path)] for p in report.problems if p.kind in ("near_duplicate", "near_leakage")}
        n_dup_files = sum(len(g) - 1 for g in ref["duplicate_groups"])
        same = ours_dups == n_dup_files and ours_near == ref["near_flagged"]
        print(f"agreement: byte-identical extra copies {ours_dups} (naive {n_dup_files}); near-duplicate "
              f"images {len(ours_near)} (naive {len(ref['near_flagged'])}) -> {'OK' if same else 'MISMATCH'}")
        d = ref["distances"]
        if len(d):
            qs = np.percentile(d, [0, 0.1, 1, 5, 50]).round(1)
            hist = np.bincount(d, minlength=257)
            low = ", ".join(f"{k}:{hist[k]}" for k in range(0, 49) if hist[k])
            print(f"distances of distinct images inside a category ({len(d):,} pairs): min {qs[0]}, "
                  f"p0.1 {qs[1]}, p1 {qs[2]}, p5 {qs[3]}, median {qs[4]}; histogram up to 48: {low}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
