#!/usr/bin/env python
"""Benchmark the statistics pass (scan + region statistics) on the synthetic sample.

Prints images per second for the manifest scan and for the region-statistics pass, and
the ratio against a naive reference measured in the same run: one thread, Pillow decode,
``skimage.measure.label`` (8-connectivity) and ``regionprops``. Both must find the same
regions. Compare ratios, not absolute times: these machines are noisy.

    python scripts/bench_stats.py [--scale small] [--seed 0] [--workers N] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from _sample import add_sample_arguments, tree_to_measure


def naive_region_counts(manifest) -> dict[str, int]:
    """Reference: single thread, PIL decode, skimage label + regionprops per image."""
    from PIL import Image
    from skimage.measure import label, regionprops

    counts = {}
    for rec in manifest[manifest["label"] == "defect"].to_dict("records"):
        union = None
        for p in rec["mask_paths"]:
            with Image.open(p) as im:
                m = np.asarray(im) > 0
            if m.ndim == 3:
                m = m.any(axis=2)
            union = m if union is None else union | m
        labels = label(union, connectivity=2)
        props = regionprops(labels)
        _ = [(r.area, r.bbox) for r in props]
        counts[rec["image_id"]] = len(props)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sample_arguments(parser)
    args = parser.parse_args()

    from threecad.image_stats import compute_image_stats
    from threecad.manifest import scan

    with tempfile.TemporaryDirectory() as tmp:
        root = tree_to_measure(args, tmp)

        t0 = time.perf_counter()
        result = scan(root)
        t_scan = time.perf_counter() - t0
        manifest = result.manifest
        n_all = len(manifest)
        n_defect = int((manifest["label"] == "defect").sum())
        px = int((manifest.loc[manifest["label"] == "defect", "height"]
                  * manifest.loc[manifest["label"] == "defect", "width"]).sum())

        compute_image_stats(manifest.head(4), workers=1)  # warm-up (imports, first decode)
        t0 = time.perf_counter()
        ours = compute_image_stats(manifest, workers=args.workers)
        t_ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        ref = naive_region_counts(manifest)
        t_ref = time.perf_counter() - t0

    got = ours.images.set_index("image_id")["n_regions"]
    mismatch = [k for k, v in ref.items() if got[k] != v]
    workers = args.workers or os.cpu_count()
    print(f"tree: {n_all} images, {n_defect} defective ({px / 1e6:.1f} Mpx of masks), "
          f"{len(ours.regions)} regions")
    print(f"scan (manifest + headers): {t_scan:.2f} s = {n_all / t_scan:,.0f} images/s")
    print(f"statistics pass, threecad ({workers} threads): {t_ours:.2f} s = "
          f"{n_defect / t_ours:,.0f} defective images/s")
    print(f"statistics pass, naive reference (1 thread, PIL + skimage): {t_ref:.2f} s = "
          f"{n_defect / t_ref:,.0f} defective images/s")
    print(f"ratio: threecad is {t_ref / t_ours:.1f}x the reference's speed "
          f"(same run; region counts {'agree' if not mismatch else 'DIFFER'})")
    if mismatch:
        print(f"mismatching images: {mismatch[:10]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
