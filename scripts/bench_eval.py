#!/usr/bin/env python
"""Benchmark the exact pixel metrics against scikit-learn and adeval on a synthetic category.

Generates N anomaly maps of HxW in memory (blurred noise, 1-5 elliptic regions on ~60 % of
the images, ~1 % anomalous pixels), then, in one run:

* threecad: P-AUROC, P-AP and AUPRO together (exact), wall and CPU time, peak memory;
* adeval 1.1.0 (the evaluator of the ADer benchmark; P-AUROC, P-AP and AUPRO binned into
  1000 strips) in a subprocess of another Python, when one is given: adeval is not a
  dependency of threecad (it pulls in torch). Install it into a side environment and
  point at it with ``--adeval-python`` or ``THREECAD_ADEVAL_PYTHON``::

      python3 -m venv /tmp/adeval-venv
      /tmp/adeval-venv/bin/pip install adeval==1.1.0 "numpy<2.4"   # adeval calls np.trapz
      python scripts/bench_eval.py --dtype float32 --adeval-python /tmp/adeval-venv/bin/python

* scikit-learn: ``roc_auc_score`` + ``average_precision_score`` on the flattened pixels
  (exact; run last, it needs ~3.5 GB per 1,000 maps of 256x256).

Checks that threecad agrees with scikit-learn to 1e-9 and prints each reference's time and
its ratio to threecad's, all measured in the same run. Compare ratios, not absolute times:
these machines are shared and noisy. ``--dtype float16`` gives tie-heavy maps (a few
thousand distinct scores); ``float32`` continuous ones (almost every anomalous score
distinct), the hard case for exact counting.

    python scripts/bench_eval.py [--maps 2000] [--size 256] [--dtype float32] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ADEVAL_ENV = "THREECAD_ADEVAL_PYTHON"

_ADEVAL_SCRIPT = """
import json, sys, time
import numpy as np
import adeval
maps = np.load(sys.argv[1], mmap_mode="r")
masks = np.load(sys.argv[2], mmap_mode="r")
maps, masks = np.ascontiguousarray(maps), np.ascontiguousarray(masks)
wall = cpu = float("inf")
for _ in range(int(sys.argv[3])):  # the fastest of --repeat runs, as for threecad
    t0, c0 = time.perf_counter(), time.process_time()
    auroc, ap, aupro = adeval.auroc_aupr_aupro(maps, masks)
    wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
print(json.dumps({"wall": wall, "cpu": cpu, "auroc": float(auroc), "ap": float(ap), "aupro": float(aupro)}))
"""


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


def run_adeval(python: str, maps: np.ndarray, masks: np.ndarray, repeat: int) -> dict:
    """adeval's three binned metrics in a subprocess of ``python`` (metric time measured there,
    the fastest of ``repeat`` runs)."""
    with tempfile.TemporaryDirectory(prefix="bench-adeval-") as tmp:
        np.save(Path(tmp) / "maps.npy", maps)
        np.save(Path(tmp) / "masks.npy", masks)
        t0 = time.perf_counter()
        proc = subprocess.run([python, "-c", _ADEVAL_SCRIPT, str(Path(tmp) / "maps.npy"), str(Path(tmp) / "masks.npy"),
                               str(max(1, repeat))],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"adeval failed ({python}): {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = wall
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog=f"adeval: pass --adeval-python or set {ADEVAL_ENV} to a Python "
                                            "that can `import adeval` (see the module docstring).")
    parser.add_argument("--maps", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="threads for threecad (default: all CPUs)")
    parser.add_argument("--repeat", type=int, default=1, help="time threecad and adeval this many times each, keep the fastest")
    parser.add_argument("--skip-sklearn", action="store_true", help="do not run scikit-learn")
    parser.add_argument("--adeval-python", default=os.environ.get(ADEVAL_ENV),
                        help=f"a Python with adeval 1.1.0 installed (default: ${ADEVAL_ENV}; unset: skip adeval)")
    args = parser.parse_args()

    from threecad.eval.metrics import pixel_metrics

    t0 = time.perf_counter()
    maps, masks = make_category(args.maps, args.size, args.dtype, args.seed)
    n_px = maps.size
    print(f"category: {args.maps} maps of {args.size}x{args.size} {args.dtype} = {n_px / 1e6:.0f} M pixels, "
          f"{masks.mean() * 100:.2f} % anomalous, {len(np.unique(maps[masks > 0])):,} distinct anomalous scores "
          f"(generated in {time.perf_counter() - t0:.1f} s)")
    pixel_metrics(masks[:4], maps[:4])  # compile / warm up
    rss_before = peak_rss_gib()
    t_ours = c_ours = float("inf")
    for _ in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        ours = pixel_metrics(masks, maps, workers=args.workers)
        t_ours, c_ours = min(t_ours, time.perf_counter() - t0), min(c_ours, time.process_time() - c0)
    print(f"threecad  P-AUROC {ours.auroc:.12f}  P-AP {ours.ap:.12f}  AUPRO {ours.aupro:.12f} (exact, "
          f"{ours.n_regions} regions): {t_ours:.2f} s wall, {c_ours:.2f} s CPU, peak RSS {peak_rss_gib():.2f} GiB "
          f"(inputs alone {rss_before:.2f} GiB)")
    ok = True
    if args.adeval_python:
        ad = run_adeval(args.adeval_python, maps, masks, args.repeat)
        err = max(abs(ad["auroc"] - ours.auroc), abs(ad["ap"] - ours.ap), abs(ad["aupro"] - ours.aupro))
        print(f"adeval    P-AUROC {ad['auroc']:.12f}  P-AP {ad['ap']:.12f}  AUPRO {ad['aupro']:.12f} (binned, "
              f"max error {err:.1e}): {ad['wall']:.2f} s wall, {ad['cpu']:.2f} s CPU "
              f"(its whole process {ad['process_wall']:.1f} s)")
        print(f"ratio: threecad (exact) is {ad['wall'] / t_ours:.2f}x faster than adeval (binned), same three "
              f"metrics [target >= 2]; in CPU time (threecad's threads summed, adeval runs one) "
              f"{ad['cpu'] / c_ours:.2f}x")
    else:
        print(f"adeval: skipped (no --adeval-python, no ${ADEVAL_ENV})")
    if not args.skip_sklearn:
        from sklearn.metrics import average_precision_score, roc_auc_score

        y = masks.reshape(-1).astype(bool)
        s = maps.reshape(-1)
        t0 = time.perf_counter()
        auroc = roc_auc_score(y, s)
        ap = average_precision_score(y, s)
        t_sk = time.perf_counter() - t0
        d = max(abs(auroc - ours.auroc), abs(ap - ours.ap))
        ok = d <= 1e-9
        print(f"sklearn   P-AUROC {auroc:.12f}  P-AP {ap:.12f}: {t_sk:.2f} s (AUROC + AP only), "
              f"peak RSS {peak_rss_gib():.2f} GiB")
        print(f"agreement with scikit-learn: max |difference| = {d:.1e} ({'OK' if ok else 'MISMATCH'}, tolerance 1e-9)")
        print(f"ratio: threecad (AUROC + AP + AUPRO) is {t_sk / t_ours:.1f}x faster than scikit-learn "
              f"(AUROC + AP) [target >= 40]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
