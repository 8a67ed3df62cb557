#!/usr/bin/env python
"""Benchmark bootstrap intervals on one synthetic category against re-evaluating every resample.

Generates N maps of HxW (the same generator as ``bench_eval.py``), then in one process:

* builds the per-image statistics once (:func:`eval.bootstrap.category_samples`; in
  ``threecad leaderboard`` they come from the scoring passes themselves);
* runs R stratified resamples (:func:`eval.bootstrap.resample_metrics`): I-AUROC, I-AP,
  P-AUROC, P-AP, AUPRO for each;
* the reference: the naive bootstrap, which builds each resampled set of maps and scores
  it with threecad's exact engine (:func:`eval.metrics.pixel_metrics`, itself ~100x faster
  than scikit-learn); timed on a few resamples and scaled to R;
* the error report: with more distinct anomalous scores than ``--levels``, pixel metrics
  are binned; their error on the point estimate (measured against the exact engine, and
  the proven P-AUROC bound) is printed next to the interval widths.

Compare ratios, not absolute times: these machines are noisy.

    python scripts/bench_bootstrap.py [--maps 2000] [--size 256] [--resamples 1000] [--levels 4096]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import make_category, peak_rss_gib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--levels", type=int, default=4096, help="most levels (exact below, binned above)")
    parser.add_argument("--naive", type=int, default=3, help="resamples re-evaluated by the naive method")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from threecad.eval.bootstrap import (BOOTSTRAP_METRICS, auroc_tie_bound, category_samples, percentile_interval,
                                point_metrics, resample_metrics, resample_weights)
    from threecad.eval.metrics import average_precision, pixel_metrics, roc_auc

    t0 = time.perf_counter()
    maps, masks = make_category(args.maps, args.size, args.dtype, args.seed)
    print(f"category: {args.maps} maps of {args.size}x{args.size} {args.dtype}, {masks.mean() * 100:.2f} % anomalous "
          f"(generated in {time.perf_counter() - t0:.1f} s)")
    pixel_metrics(masks[:4], maps[:4])  # compile / warm up

    t0 = time.perf_counter()
    s = category_samples(list(masks), list(maps), code="BENCH", max_levels=args.levels)
    t_build = time.perf_counter() - t0
    print(f"per-image statistics: {s.levels.size} levels ({'exact' if s.exact else 'binned'}), "
          f"built once in {t_build:.1f} s")

    w = resample_weights(s.image_ids, s.defect, n_resamples=args.resamples, seed=args.seed, stratum_key="BENCH")
    t0 = time.perf_counter()
    values = resample_metrics(s, w)
    t_boot = time.perf_counter() - t0
    print(f"threecad bootstrap: {args.resamples} resamples x 5 metrics in {t_boot:.1f} s "
          f"({1e3 * t_boot / args.resamples:.1f} ms per resample), peak RSS {peak_rss_gib():.2f} GiB")

    # the naive bootstrap: materialise each resample, score it with the exact engine
    order = np.array([int(i.rsplit("/", 1)[1]) for i in s.image_ids])
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
    labels = masks.reshape(len(masks), -1).any(axis=1)
    t0 = time.perf_counter()
    naive = []
    for r in range(args.naive):
        idx = np.repeat(order, w[r])
        px = pixel_metrics(masks[idx], maps[idx])
        naive.append((roc_auc(labels[idx], scores[idx]), average_precision(labels[idx], scores[idx]),
                      px.auroc, px.ap, px.aupro))
    t_naive = (time.perf_counter() - t0) / args.naive
    agree = max(abs(naive[r][k] - values[m][r]) for r in range(args.naive)
                for k, m in enumerate(BOOTSTRAP_METRICS))
    print(f"naive bootstrap (re-evaluate each resample, exact engine): {t_naive:.2f} s per resample -> "
          f"{t_naive * args.resamples:.0f} s for {args.resamples}")
    print(f"ratio: threecad bootstrap is {t_naive * args.resamples / (t_build + t_boot):.0f}x faster than the naive "
          f"bootstrap (statistics build included); max |difference| on the {args.naive} checked resamples "
          f"{agree:.1e}")

    exact = pixel_metrics(masks, maps)
    binned = point_metrics(s)
    errs = {"pixel_auroc": abs(binned["pixel_auroc"] - exact.auroc), "pixel_ap": abs(binned["pixel_ap"] - exact.ap),
            "aupro": abs(binned["aupro"] - exact.aupro)}
    print(f"point-estimate error of the levels: P-AUROC {errs['pixel_auroc']:.1e} (bound {auroc_tie_bound(s):.1e}), "
          f"P-AP {errs['pixel_ap']:.1e}, AUPRO {errs['aupro']:.1e}")
    for m in ("pixel_auroc", "pixel_ap", "aupro"):
        lo, hi = percentile_interval(values[m], 0.95)
        print(f"  {m}: 95 % interval [{lo:.4f}, {hi:.4f}], width {hi - lo:.4f}; "
              f"error / width = {errs[m] / (hi - lo):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
