#!/usr/bin/env python
"""Benchmark ``threecad eval`` from disk at the full 3CAD test-set scale.

Builds, in a temporary folder, a synthetic ground-truth tree with the published test
counts of every category (16,546 images: 5,084 good, 11,462 defective) times ``--scale``
and a submission of ``.npy`` maps, then runs the ``threecad eval`` command in a child
process and prints its wall time, CPU time and peak memory (the child's maximum resident
set), and each category's phase times (read, sort, count, metrics; from ``threecad -v``).

* default: 256x256 images, so the evaluation grid is 256x256 (1.08 billion pixels),
  float16 maps;
* ``--native``: every image a size drawn from its category's published height and width
  ranges (10.7 billion pixels at full scale), masks at that size (1-6 elliptic regions,
  about 1 % of the pixels; 15 % of defective images also filed under a second type where
  the category has several types per image), 256x256 maps (``--dtype``, continuous
  scores), scored on the ``standard`` protocol's native grid. ``--check`` then scores a
  second, small tree built the same way (``--check-scale``) and compares every category's
  P-AUROC, P-AP (scikit-learn on the resized pixels), AUPRO (an exact sort of every pixel,
  independent of the engine) and I-AUROC with it.

    python scripts/bench_eval_full.py [--scale 1.0] [--native] [--dtype float32] [--check]
                                      [--protocol standard] [--keep DIR] [--workers 1,2]

With ``--workers 1,2`` it then runs ``threecad eval --workers N`` (a local Dask cluster of N
single-threaded worker processes) for each N, checks that results.json is identical to the
single-process run (apart from ``created`` and ``command``), and prints the wall time of each,
the speed-up from the first N to the others, and what the cluster's tasks sent back per task
against the map bytes they read.

The exact peers need 35-65 GB for this (scikit-learn on the flattened pixels), which this
2-core, 24 GiB machine cannot run; bench_eval.py measures the ratio against scikit-learn at
a scale it can hold.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build(root: Path, preds: Path, fraction: float, seed: int = 0, dtype: str = "float16") -> tuple[int, int]:
    """Ground truth (test split only) and a submission; returns (images, pixels)."""
    import cv2

    from threecad.categories import CATEGORIES
    from threecad.sample import SAMPLE_TYPES

    rng = np.random.default_rng(seed)
    size = 256
    blank = cv2.imencode(".png", np.zeros((size, size), np.uint8))[1].tobytes()
    n_images = 0
    base = rng.random((64, size // 8, size // 8)).astype(np.float32)
    for cat in CATEGORIES:
        n_good = max(1, round(cat.test_good * fraction))
        n_defect = max(1, round(cat.test_defect * fraction))
        types = list(SAMPLE_TYPES[cat.code])
        for i in range(n_good + n_defect):
            stem = f"{i:06d}"
            folder = "good" if i < n_good else types[i % len(types)]
            img = root / cat.folder / "test" / folder / f"{stem}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            img.write_bytes(blank)
            amap = cv2.resize(base[i % 64], (size, size)) + rng.normal(0, 0.05, (size, size)).astype(np.float32)
            if folder != "good":
                mask = np.zeros((size, size), np.uint8)
                for _ in range(int(rng.integers(1, 6))):
                    cv2.ellipse(mask, (int(rng.integers(0, size)), int(rng.integers(0, size))),
                                (int(rng.integers(2, 20)), int(rng.integers(2, 20))), 0, 0, 360, 255, -1)
                gt = root / cat.folder / "ground_truth" / folder / f"{stem}.png"
                gt.parent.mkdir(parents=True, exist_ok=True)
                gt.write_bytes(cv2.imencode(".png", mask)[1].tobytes())
                amap += (mask > 0) * rng.uniform(0.1, 0.6)
            out = preds / cat.folder / "test" / folder / f"{stem}.npy"
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, amap.astype(dtype), allow_pickle=False)
            n_images += 1
    return n_images, n_images * size * size


def _ellipses(rng, mask: np.ndarray, target: float, max_regions: int) -> None:
    """Draw 1..max_regions filled ellipses into ``mask`` (255) until about ``target`` pixels."""
    import cv2

    h, w = mask.shape
    n = int(rng.integers(1, max_regions + 1))
    for share in rng.dirichlet(np.ones(n)):
        area = max(4.0, share * target)
        aspect = rng.uniform(0.3, 1.0)
        a = max(1, int(round(np.sqrt(area / (np.pi * aspect)))))
        b = max(1, int(round(a * aspect)))
        centre = (int(rng.integers(a, max(a + 1, w - a))), int(rng.integers(b, max(b + 1, h - b))))
        cv2.ellipse(mask, centre, (a, b), float(rng.uniform(0, 180)), 0, 360, 255, -1)


def build_native(root: Path, preds: Path, fraction: float, dtype: str, seed: int = 0,
                 workers: int = 2) -> tuple[int, int]:
    """A tree at native sizes: published test counts x ``fraction``, each image a size drawn
    from its category's published height and width ranges, masks at that size (1-6
    elliptic regions, about 1 % of the pixels, 15 % of defective images with a second
    type where the category has them), maps of 256x256 ``dtype`` (continuous scores).
    Returns (images, pixels on the native grid)."""
    import cv2
    from concurrent.futures import ThreadPoolExecutor

    from threecad.categories import CATEGORIES
    from threecad.sample import SAMPLE_TYPES

    rng = np.random.default_rng(seed)
    blanks: dict[tuple[int, int], bytes] = {}
    jobs = []
    for cat in CATEGORIES:
        n_good = max(1, round(cat.test_good * fraction))
        n_defect = max(1, round(cat.test_defect * fraction))
        types = list(SAMPLE_TYPES[cat.code])
        for i in range(n_good + n_defect):
            h = int(rng.integers(cat.height[0], cat.height[1] + 1))
            w = int(rng.integers(cat.width[0], cat.width[1] + 1))
            folder = "good" if i < n_good else types[i % len(types)]
            extra = []
            if folder != "good" and cat.types_per_defect_image[1] > 1 and len(types) > 1 and rng.random() < 0.15:
                extra = [types[(i + 1) % len(types)]]
            jobs.append((cat.folder, f"{i:06d}", folder, extra, h, w, int(rng.integers(1 << 31))))

    def one(job) -> int:
        cat, stem, folder, extra, h, w, s = job
        r = np.random.default_rng(s)
        if (h, w) not in blanks:
            blanks[(h, w)] = cv2.imencode(".png", np.zeros((h, w), np.uint8))[1].tobytes()
        img = root / cat / "test" / folder / f"{stem}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(blanks[(h, w)])
        base = cv2.resize(r.random((32, 32)).astype(np.float32), (256, 256), interpolation=cv2.INTER_CUBIC)
        amap = base + r.normal(0, 0.05, (256, 256)).astype(np.float32)
        if folder != "good":
            union = np.zeros((h, w), np.uint8)
            for t in [folder, *extra]:
                mask = np.zeros((h, w), np.uint8)
                _ellipses(r, mask, 0.01 * h * w * r.uniform(0.5, 1.5) / (1 + len(extra)), 6)
                gt = root / cat / "ground_truth" / t / f"{stem}.png"
                gt.parent.mkdir(parents=True, exist_ok=True)
                gt.write_bytes(cv2.imencode(".png", mask)[1].tobytes())
                union |= mask
            small = cv2.resize(union.astype(np.float32) / 255, (256, 256), interpolation=cv2.INTER_AREA)
            amap += cv2.GaussianBlur(small, (0, 0), 2) * np.float32(r.uniform(0.2, 1.0))
        out = preds / cat / "test" / folder / f"{stem}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, amap.astype(dtype), allow_pickle=False)
        return h * w

    with ThreadPoolExecutor(workers) as pool:
        pixels = sum(pool.map(one, jobs))
    return len(jobs), pixels


def exact_aupro(scores: np.ndarray, weights: np.ndarray, positive: np.ndarray, n_regions: int,
                fpr_limit: float = 0.3) -> float:
    """MVTec AD AUPRO from every pixel, by one sort (independent of threecad's engine).

    ``weights`` is ``1 / area`` of each anomalous pixel's region (0 for normal pixels).
    Thresholds are the distinct scores, high to low; ties move FPR and PRO together."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fp = np.cumsum(~positive[order])
    pro = np.cumsum(weights[order])
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last pixel of each distinct score
    n_neg = fp[-1]
    x = np.r_[0.0, fp[last] / n_neg]
    y = np.r_[0.0, pro[last] / n_regions]
    j = int(np.searchsorted(x, fpr_limit, side="left"))
    area = float(np.trapezoid(y[:j], x[:j])) if j > 1 else 0.0
    if j < x.size:
        x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
        y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        area += (fpr_limit - x0) * (y0 + y_lim) / 2
    return area / fpr_limit


def reference(root: Path, preds: Path) -> dict[str, dict[str, float]]:
    """Per category, the standard protocol's metrics computed directly from the files."""
    import cv2
    from skimage.measure import label
    from sklearn.metrics import average_precision_score, roc_auc_score

    from threecad.manifest import scan

    cv2.ipp.setUseIPP(False)
    manifest = scan(root).manifest
    test = manifest[manifest["split"] == "test"]
    out = {}
    for category, rows in test.groupby("category", sort=False):
        ys, ss, ws, image_y, image_s = [], [], [], [], []
        n_regions = 0
        for row in rows.itertuples():
            amap = np.load(preds / row.category / "test" / row.folder / f"{row.stem}.npy")
            h, w = row.height, row.width
            # the standard rule, by OpenCV's own code (IPP off: its IPP path rounds by CPU):
            # float32 arithmetic for float32 and narrower maps, float64 otherwise
            work = np.float32 if amap.dtype.itemsize <= 4 and amap.dtype.kind == "f" else np.float64
            on_grid = cv2.resize(amap.astype(work), (w, h), interpolation=cv2.INTER_LINEAR)
            gt = np.zeros((h, w), bool)
            for p in row.mask_paths:
                gt |= cv2.imread(p, cv2.IMREAD_UNCHANGED) > 0
            lab = label(gt, connectivity=2)
            n_regions += int(lab.max())
            areas = np.bincount(lab.ravel())
            ws.append(np.where(lab.ravel() > 0, 1.0 / areas[lab.ravel()], 0.0))
            ys.append(gt.ravel())
            ss.append(on_grid.ravel())
            image_y.append(row.label != "good")
            image_s.append(float(amap.max()))
        y, sc, wt = np.concatenate(ys), np.concatenate(ss), np.concatenate(ws)
        out[category] = {"pixel_auroc": roc_auc_score(y, sc), "pixel_ap": average_precision_score(y, sc),
                         "aupro": exact_aupro(sc, wt, y, n_regions), "image_auroc": roc_auc_score(image_y, image_s)}
    return out


def check(tmp: Path, scale: float, dtype: str) -> bool:
    """Score a small native tree with ``threecad eval`` and compare with :func:`reference`."""
    import json

    root, preds = tmp / "check" / "3cad", tmp / "check" / "preds"
    n, px = build_native(root, preds, scale, dtype, seed=1)
    proc = subprocess.run([sys.executable, "-m", "threecad", "eval", str(preds), "--data-root", str(root),
                           "--no-progress", "--out", str(tmp / "check" / "results")], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return False
    ours = json.loads((tmp / "check" / "results" / "results.json").read_text())["categories"]
    ref = reference(root, preds)
    worst = max(abs(ours[c][m] - v) for c, r in ref.items() for m, v in r.items())
    ok = worst < 1e-9
    print(f"check: {n} images ({px / 1e6:.0f} M native pixels), every category's P-AUROC, P-AP, AUPRO and "
          f"I-AUROC against scikit-learn and an exact sort of every pixel: max |difference| {worst:.1e} "
          f"({'OK' if ok else 'MISMATCH'})")
    return ok


def _print_phases(log: str) -> None:
    """Each category's phase times (the ``-v`` log of ``threecad eval``) and their sums."""
    import re

    totals: dict[str, float] = {}
    for line in log.splitlines():
        m = re.search(r"(\w+): (\d+) images, ([\d,?]+) distinct anomalous scores; phases \(s\): (.*)$", line)
        if not m:
            continue
        phases = {k: float(v) for k, v in (p.split() for p in m.group(4).split(", "))}
        for k, v in phases.items():
            totals[k] = totals.get(k, 0.0) + v
        print(f"  {m.group(1):5s} {int(m.group(2)):6,d} images, K = {m.group(3):>11s}: "
              + ", ".join(f"{k} {v:6.1f} s" for k, v in phases.items()))
    if totals:
        print("  all categories: " + ", ".join(f"{k} {v:.1f} s" for k, v in totals.items())
              + " (read = pass 1: maps, masks, positives; sort = the index; count = pass 2; metrics = "
                "the category and its breakdowns)")


def _results(path: Path) -> dict:
    import json

    r = json.loads(path.read_text())
    r.pop("created"), r.pop("command")
    return r


def rescore(root: Path, preds: Path, protocol: str, n_workers: int) -> tuple[float, float]:
    """Seconds to score ``preds`` twice with one DistributedScorer on a local cluster."""
    from distributed import Client

    from threecad.eval.distributed import DistributedScorer, local_cluster
    from threecad.eval.protocols import get_protocol
    from threecad.eval.submission import load_submission
    from threecad.manifest import scan

    import logging

    logging.getLogger("threecad").setLevel(logging.ERROR)  # the scan's notes on folder names
    scan_result = scan(root)
    submission = load_submission(preds, scan_result.manifest)
    times = []
    with local_cluster(n_workers) as cluster, Client(cluster) as client:
        scorer = DistributedScorer(client, scan_result, get_protocol(protocol))
        for _ in range(2):
            t0 = time.perf_counter()
            scorer.score(submission)
            times.append(time.perf_counter() - t0)
    return times[0], times[1]


def _worker_counts(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--workers takes numbers separated by commas, got {text!r}") from None
    if any(n < 1 for n in counts):
        raise SystemExit("--workers: every count must be at least 1")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", "--fraction", dest="fraction", type=float, default=1.0,
                        help="share of the published counts (default 1.0)")
    parser.add_argument("--native", action="store_true",
                        help="native image sizes (published ranges), masks at native size, 256x256 maps")
    parser.add_argument("--dtype", default=None, choices=("float16", "float32"),
                        help="map dtype (default float16; float32 with --native)")
    parser.add_argument("--check", action="store_true",
                        help="with --native: also check a small tree against an independent reference")
    parser.add_argument("--check-scale", type=float, default=0.004, help="size of the --check tree")
    parser.add_argument("--protocol", default="standard", choices=("standard", "paper"))
    parser.add_argument("--keep", help="build here and keep it (reused when it exists)")
    parser.add_argument("--workers", metavar="N[,N...]",
                        help="also score on local Dask clusters of these sizes (e.g. 1,2) and compare")
    parser.add_argument("--no-single", action="store_true",
                        help="with --workers: skip the single-process run (no identity check then)")
    parser.add_argument("--rescore", action="store_true",
                        help="with --workers: also score the submission twice in one session "
                             "(DistributedScorer): the second run reuses the ground truth kept on the cluster")
    args = parser.parse_args()
    counts = _worker_counts(args.workers)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="threecad-bench-"))
    root, preds = tmp / "3cad", tmp / "preds"
    try:
        dtype = args.dtype or ("float32" if args.native else "float16")
        if not root.exists():
            t0 = time.perf_counter()
            if args.native:
                n, px = build_native(root, preds, args.fraction, dtype)
            else:
                n, px = build(root, preds, args.fraction, dtype=dtype)
            print(f"built {n:,} test images and {dtype} maps ({px / 1e9:.2f} G pixels on the grid) in "
                  f"{time.perf_counter() - t0:.0f} s")
        base = [sys.executable, "-m", "threecad", "-v", "eval", str(preds), "--data-root", str(root),
                "--protocol", args.protocol, "--no-progress"]  # -v: each category's phase times
        reference = None
        if not (counts and args.no_single):
            shutil.rmtree(preds / "results", ignore_errors=True)
            t0 = time.perf_counter()
            proc = subprocess.run(base, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            peak = usage.ru_maxrss / 2**20
            cpu = usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            print(proc.stdout)
            _print_phases(proc.stderr)
            target = "< 2.5 min, < 4 GiB" if args.native else "< 30 s, < 3 GiB"
            print(f"threecad eval ({args.protocol}{', native' if args.native else ''}, scale {args.fraction:g}): "
                  f"{wall:.1f} s wall, {cpu:.1f} s CPU (user + sys: on a busy machine, CPU / cores "
                  f"estimates an idle machine's wall), peak memory {peak:.2f} GiB (targets at full scale: {target})")
            reference = _results(preds / "results" / "results.json")
        walls: dict[int, float] = {}
        for n in counts:
            out = tmp / f"results-workers{n}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            proc = subprocess.run([*base, "--workers", str(n), "--out", str(out)], capture_output=True, text=True)
            walls[n] = wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            traffic = [line for line in proc.stderr.splitlines() if line.startswith("cluster:")]
            same = ("" if reference is None else
                    ", results.json identical to the single-process run" if _results(out / "results.json") == reference
                    else ", results.json DIFFERS from the single-process run")
            print(f"threecad eval ({args.protocol}) --workers {n}: {wall:.1f} s wall (cluster start "
                  f"included){same}")
            for line in traffic:
                print(f"  {line}")
            if reference is not None and "DIFFERS" in same:
                return 1
        if args.check and args.native and not check(tmp, args.check_scale, dtype):
            return 1
        if args.rescore:
            for n in counts:
                first, second = rescore(root, preds, args.protocol, n)
                print(f"one session, {n} worker process(es): first submission {first:.1f} s, the next "
                      f"{second:.1f} s (ground truth kept on the cluster; no cluster start, scan or load)")
        if len(walls) > 1:
            first = counts[0]
            for n in counts[1:]:
                print(f"speed-up from {first} to {n} worker processes: {walls[first] / walls[n]:.2f}x")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
