#!/usr/bin/env python
"""Benchmark the exact pixel metrics against scikit-learn on a synthetic category.

Generates N anomaly maps of HxW in memory (realistic regions, 1-3 % anomalous pixels on
defective images, float16-quantised scores so that ties are common), then in one process:

* threecad: P-AUROC, P-AP and AUPRO together (exact), peak memory of the process;
* scikit-learn: ``roc_auc_score`` + ``average_precision_score`` on the flattened pixels;
* optionally (``--binned``) a 1000-bin histogram approximation of AUROC, the method of the
  fastest binned peers, for its speed and error.

Checks that the values agree to 1e-6 and prints times and ratios. Compare ratios, not
absolute times: these machines are noisy.

    python scripts/bench_eval.py [--maps 2000] [--size 256] [--dtype float16] [--workers N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np


def make_category(n_maps: int, size: int, dtype: str, seed: int):
    """Maps (n, size, size) and 0/1 masks with 1-5 elliptic regions on ~60 % of images."""
    import cv2

    rng = np.random.default_rng(seed)
    maps = np.empty((n_maps, size, size), dtype=dtype)
    masks = np.zeros((n_maps, size, size), np.uint8)
    base = rng.random((n_maps, size // 8, size // 8)).astype(np.float32)
    for i in range(n_maps):
        m = cv2.resize(base[i], (size, size), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.6:
            target = rng.uniform(0.01, 0.03) * size * size
            area = 0
            for _ in range(int(rng.integers(1, 6))):
                axes = (int(rng.integers(2, size // 10)), int(rng.integers(2, size // 10)))
                centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
                cv2.ellipse(masks[i], centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
                area = masks[i].sum()
                if area > target:
                    break
            m = m + masks[i] * rng.uniform(0.1, 0.8) * cv2.GaussianBlur(masks[i].astype(np.float32), (0, 0), 3)
        maps[i] = m
    return maps, masks


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32", "float64"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-sklearn", action="store_true", help="only time threecad")
    parser.add_argument("--binned", action="store_true", help="also time a 1000-bin approximation")
    args = parser.parse_args()

    from threecad.eval.metrics import pixel_metrics

    t0 = time.perf_counter()
    maps, masks = make_category(args.maps, args.size, args.dtype, args.seed)
    n_px = maps.size
    print(f"category: {args.maps} maps of {args.size}x{args.size} {args.dtype} = {n_px / 1e6:.0f} M pixels, "
          f"{masks.mean() * 100:.2f} % anomalous, {len(np.unique(maps)):,} distinct scores "
          f"(generated in {time.perf_counter() - t0:.1f} s)")
    pixel_metrics(maps[:4], masks[:4])  # compile / warm up
    rss_before = peak_rss_gib()
    t0 = time.perf_counter()
    ours = pixel_metrics(maps, masks, workers=args.workers)
    t_ours = time.perf_counter() - t0
    print(f"threecad  P-AUROC {ours.auroc:.9f}  P-AP {ours.ap:.9f}  AUPRO {ours.aupro:.9f}  "
          f"({ours.n_regions} regions): {t_ours:.2f} s, peak RSS {peak_rss_gib():.2f} GiB "
          f"(inputs alone {rss_before:.2f} GiB)")
    ok = True
    if not args.skip_sklearn:
        from sklearn.metrics import average_precision_score, roc_auc_score

        y = masks.reshape(-1).astype(bool)
        s = maps.reshape(-1)
        t0 = time.perf_counter()
        auroc = roc_auc_score(y, s)
        ap = average_precision_score(y, s)
        t_sk = time.perf_counter() - t0
        d = max(abs(auroc - ours.auroc), abs(ap - ours.ap))
        ok = d < 1e-6
        print(f"sklearn   P-AUROC {auroc:.9f}  P-AP {ap:.9f}: {t_sk:.2f} s (AUROC + AP only), "
              f"peak RSS {peak_rss_gib():.2f} GiB")
        print(f"agreement: max |difference| = {d:.2e} ({'OK' if ok else 'MISMATCH'})")
        print(f"ratio: threecad (AUROC + AP + AUPRO) is {t_sk / t_ours:.1f}x faster than "
              f"scikit-learn (AUROC + AP)")
    if args.binned:
        t0 = time.perf_counter()
        y = masks.reshape(-1).astype(bool)
        s = maps.reshape(-1).astype(np.float32)
        lo, hi = float(s.min()), float(s.max())
        bins = np.linspace(lo, hi, 1001)
        pos = np.histogram(s[y], bins)[0][::-1].cumsum()
        neg = np.histogram(s[~y], bins)[0][::-1].cumsum()
        tpr = np.concatenate([[0], pos / pos[-1]])
        fpr = np.concatenate([[0], neg / neg[-1]])
        approx = float(np.trapezoid(tpr, fpr))
        t_bin = time.perf_counter() - t0
        print(f"binned (1000 bins) P-AUROC {approx:.9f} (error {abs(approx - ours.auroc):.1e}): "
              f"{t_bin:.2f} s; threecad exact is {t_bin / t_ours:.1f}x its speed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
