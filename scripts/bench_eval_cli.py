#!/usr/bin/env python
"""Benchmark the whole ``threecad eval`` command from disk against scikit-learn in memory.

Writes a one-category tree (Aluminum_Ipad, N test images of SxS, about 60 % defective
with 1-5 elliptic regions, 1-3 % anomalous pixels) and a submission of continuous
float32 ``.npy`` maps, then measures in one run:

* threecad: ``threecad eval`` in a child process (start-up, scan, validation, reading
  every map and mask from disk, P-AUROC, P-AP, AUPRO, image metrics, breakdowns, writing
  the results), wall time of the whole process;
* scikit-learn: ``roc_auc_score`` + ``average_precision_score`` on the same pixels,
  already in memory (loading them is not counted).

It checks that the two agree to 1e-9 and prints the ratio (the issue's target: >= 30x).

    python scripts/bench_eval_cli.py [--maps 400] [--size 512] [--dtype float32] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORY = "Aluminum_Ipad"


def write_tree(tmp: Path, maps: np.ndarray, masks: np.ndarray) -> tuple[Path, Path]:
    """Ground truth and submission for ``maps``/``masks`` (image i is good when its mask is empty)."""
    import cv2

    root, preds = tmp / "3cad", tmp / "preds"
    blank = cv2.imencode(".png", np.zeros(maps.shape[1:], np.uint8))[1].tobytes()
    for i, (amap, mask) in enumerate(zip(maps, masks)):
        folder = "scratch" if mask.any() else "good"
        stem = f"{i:06d}"
        img = root / CATEGORY / "test" / folder / f"{stem}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(blank)
        if folder != "good":
            gt = root / CATEGORY / "ground_truth" / folder / f"{stem}.png"
            gt.parent.mkdir(parents=True, exist_ok=True)
            gt.write_bytes(cv2.imencode(".png", mask * np.uint8(255))[1].tobytes())
        out = preds / CATEGORY / "test" / folder / f"{stem}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, amap, allow_pickle=False)
    return root, preds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the tree here and keep it")
    args = parser.parse_args()

    from bench_eval import make_category  # scripts/ is on sys.path when run as a script

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="threecad-cli-"))
    try:
        t0 = time.perf_counter()
        maps, masks = make_category(args.maps, args.size, args.dtype, args.seed)
        root, preds = write_tree(tmp, maps, masks)
        print(f"{args.maps} maps of {args.size}x{args.size} {args.dtype} ({maps.size / 1e6:.0f} M pixels, "
              f"{masks.mean() * 100:.2f} % anomalous) written in {time.perf_counter() - t0:.0f} s")

        cmd = [sys.executable, "-m", "threecad", "eval", str(preds), "--data-root", str(root), "--no-progress",
               "--out", str(tmp / "results")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        t_cli = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_cli = usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        ours = json.loads((tmp / "results" / "results.json").read_text())["categories"][CATEGORY]
        print(f"threecad eval (whole CLI from disk): {t_cli:.2f} s wall, {cpu_cli:.2f} s CPU; "
              f"P-AUROC {ours['pixel_auroc']:.9f} "
              f"P-AP {ours['pixel_ap']:.9f} AUPRO {ours['aupro']:.9f}")

        from sklearn.metrics import average_precision_score, roc_auc_score

        y = masks.reshape(-1).astype(bool)
        s = maps.reshape(-1)
        t0, c0 = time.perf_counter(), time.process_time()
        auroc = roc_auc_score(y, s)
        ap = average_precision_score(y, s)
        t_sk, cpu_sk = time.perf_counter() - t0, time.process_time() - c0
        d = max(abs(auroc - ours["pixel_auroc"]), abs(ap - ours["pixel_ap"]))
        print(f"scikit-learn AUROC + AP (pixels in memory): {t_sk:.2f} s wall, {cpu_sk:.2f} s CPU; "
              f"P-AUROC {auroc:.9f} P-AP {ap:.9f}")
        print(f"agreement: max |difference| = {d:.1e} ({'OK' if d < 1e-9 else 'MISMATCH'})")
        print(f"ratio: the whole threecad eval is {t_sk / t_cli:.1f}x faster than scikit-learn's AUROC + AP "
              f"(wall; target >= 30x); CPU time ratio {cpu_sk / cpu_cli:.1f}x")
        return 0 if d < 1e-9 else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
