#!/usr/bin/env python
"""Benchmark the PatchKNN baseline: images/s and quality, against the previous implementation.

Both run in this process on the same tree, one after the other, with the same threads:

* ``reference``: the implementation this project shipped before (its feature code and
  scikit-learn's ``NearestNeighbors`` k-d tree on the raw standardised features), reproduced
  below so that it stays measurable; image decoding, upsampling, smoothing and the submission
  writer are the library's own, as they were.
* ``current``: ``threecad predict --model baseline``'s path
  (:func:`threecad.reference_models.patchknn.predict.fit_predict_submission`).

Each writes a submission; images/s counts every test map over the whole wall time (fitting every
category included, as ``threecad predict`` prints it). Quality is measured by ``threecad eval``
itself (a subprocess, standard protocol), and the two sets of maps are compared value by value.
A first untimed pass over one category compiles the numba kernels (cached on disk afterwards).
With ``--repeat N`` the two paths alternate (reference, current, reference, ...) so that a change
of the machine's load hits both; the best run of each is kept. The load average (1 minute) is
printed before and after each run: on a shared machine the wall-time ratio swings with it, the
CPU-time ratio much less.

    python scripts/bench_patchknn.py                          # fresh small sample
    python scripts/bench_patchknn.py --root /tmp/small --workers 2
    python scripts/bench_patchknn.py --root /data/3CAD --categories CS --skip-reference
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _sample import add_sample_arguments, tree_to_measure  # noqa: E402

METRICS = ("pixel_auroc", "pixel_ap", "aupro", "image_auroc")


def reference_patch_features(rgb, config):
    """The previous feature code, unchanged (the library's computes the same values, faster)."""
    import cv2
    import numpy as np

    size = config.image_size
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    grey = lab[:, :, 0] / 255.0
    med = float(np.median(grey))
    spread = float(np.percentile(grey, 90) - np.percentile(grey, 10))
    grey = (grey - med) / (spread + 0.05)
    chroma = lab[:, :, 1:] - np.median(lab[:, :, 1:].reshape(-1, 2), axis=0)
    chroma = cv2.GaussianBlur(chroma / 32.0, (0, 0), 1.5)
    chans = [cv2.GaussianBlur(grey, (0, 0), 1.0), chroma[:, :, 0], chroma[:, :, 1]]
    blurred = {s: cv2.GaussianBlur(grey, (0, 0), s) for s in config.sigmas}
    for s in config.sigmas:
        b = blurred[s]
        gx = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3)
        chans.append(np.sqrt(gx * gx + gy * gy) * s)
        chans.append(b - cv2.GaussianBlur(b, (0, 0), 2.0 * s))
    mean = cv2.GaussianBlur(grey, (0, 0), 3.0)
    chans.append(np.sqrt(np.maximum(cv2.GaussianBlur(grey * grey, (0, 0), 3.0) - mean * mean, 0.0)))
    feats = np.stack(chans, axis=-1).astype(np.float32)
    grid = size // config.stride
    return cv2.resize(feats, (grid, grid), interpolation=cv2.INTER_AREA).reshape(grid, grid, -1)


def reference_fit_predict(manifest, out, config, workers):
    """The previous implementation: its features, a scikit-learn k-d tree searched per image."""
    import cv2
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    from threecad.parallel import thread_map
    from threecad.reference_models.images import read_rgb
    from threecad.reference_models.submission import SubmissionWriter

    def features(path):
        return reference_patch_features(read_rgb(path, config.image_size), config)

    meta = {"method": "PatchKNN (reference: scikit-learn search)", "model": "patchknn-reference"}
    with SubmissionWriter(out, meta) as writer:
        for _, rows in manifest.groupby("category", sort=False):
            train = rows[(rows["split"] == "train") & (rows["label"] == "good")]["image_path"].tolist()
            test = list(rows[rows["split"] == "test"].itertuples())
            if not test:
                continue
            feats = thread_map(features, train, workers=workers)
            bank = np.concatenate([f.reshape(-1, f.shape[-1]) for f in feats])
            mean, scale = bank.mean(axis=0), bank.std(axis=0) + 1e-3
            bank = (bank - mean) / scale
            if len(bank) > config.max_bank:
                rng = np.random.default_rng(config.seed)
                bank = bank[np.sort(rng.choice(len(bank), config.max_bank, replace=False))]
            index = NearestNeighbors(n_neighbors=config.k).fit(np.ascontiguousarray(bank, dtype=np.float32))

            def one(row):
                f = features(row.image_path)
                grid = f.shape[0]
                q = (f.reshape(-1, f.shape[-1]) - mean) / scale
                dist, _ = index.kneighbors(q.astype(np.float32))
                patch = dist.mean(axis=1).reshape(grid, grid).astype(np.float32)
                size = config.image_size
                amap = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
                if config.smooth_sigma > 0:
                    amap = cv2.GaussianBlur(amap, (0, 0), config.smooth_sigma)
                writer.add(row, amap)

            thread_map(one, test, workers=workers)
    return Path(out)


def current_fit_predict(manifest, out, config, workers):
    from threecad.reference_models.patchknn.predict import fit_predict_submission

    return fit_predict_submission(manifest, out, config=config, workers=workers)


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def evaluate(preds: Path, root: Path, categories) -> dict:
    """``threecad eval --json`` on a submission: the mean of each metric over the categories."""
    cmd = [sys.executable, "-m", "threecad", "eval", str(preds), "--data-root", str(root), "--json",
           "--no-progress", "--out", str(preds.parent / f"{preds.name}-results")]
    if categories:
        cmd += ["--categories", *categories]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"threecad eval failed on {preds}:\n{proc.stderr}")
    return json.loads(proc.stdout)["mean"]


def map_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between the float16 maps of two submissions (same keys)."""
    import numpy as np

    worst = 0.0
    for path in sorted(a.rglob("*.npy")):
        other = b / path.relative_to(a)
        x = np.load(path, allow_pickle=False).astype(np.float64)
        y = np.load(other, allow_pickle=False).astype(np.float64)
        worst = max(worst, float(np.abs(x - y).max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sample_arguments(parser)
    parser.add_argument("--categories", nargs="+", default=None, help="only these categories")
    parser.add_argument("--skip-reference", action="store_true", help="measure the current path only")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each (the best is kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    from threecad.manifest import load_manifest
    from threecad.reference_models.patchknn import PatchKNNConfig

    config = PatchKNNConfig()
    workers = args.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench_patchknn.") as tmp:
        root = tree_to_measure(args, tmp)
        manifest = load_manifest(root, categories=args.categories)
        n_test = int((manifest["split"] == "test").sum())
        n_train = int(((manifest["split"] == "train") & (manifest["label"] == "good")).sum())
        print(f"{root}: {n_test} test images, {n_train} train/good images, "
              f"{manifest['category'].nunique()} categories; {workers} threads on {os.cpu_count()} CPUs")
        first = manifest[manifest["category"] == manifest["category"].iloc[0]]
        current_fit_predict(first, Path(tmp) / "warmup", config, workers)  # numba compilation / cache load

        runs = {"current": current_fit_predict}
        if not args.skip_reference:
            runs = {"reference": reference_fit_predict, **runs}
        results: dict[str, tuple] = {}
        for i in range(max(1, args.repeat)):
            for name, fn in runs.items():  # alternating: a change of load hits both paths
                out = Path(tmp) / f"{name}{i}"
                load_before = os.getloadavg()[0]
                wall, cpu = timed(fn, manifest, out, config, workers)
                load = (load_before, os.getloadavg()[0])
                print(f"  run {i + 1} {name}: wall {wall:.1f} s, CPU {cpu:.1f} s, "
                      f"load average {load[0]:.1f} -> {load[1]:.1f}", flush=True)
                if name not in results or wall < results[name][0]:
                    results[name] = (wall, cpu, out, load)

        print(f"\n{'path':<10} {'wall s':>8} {'cpu s':>8} {'images/s':>9} {'cpu ms/img':>10} {'load':>11}   "
              + "  ".join(f"{m:>11}" for m in METRICS))
        means = {}
        for name, (wall, cpu, out, load) in results.items():
            means[name] = evaluate(out, root, args.categories)
            values = "  ".join(f"{100 * means[name][m]:>11.2f}" for m in METRICS)
            print(f"{name:<10} {wall:>8.1f} {cpu:>8.1f} {n_test / wall:>9.2f} {1000 * cpu / n_test:>10.1f} "
                  f"{load[0]:>5.1f}->{load[1]:<5.1f}   {values}")
        if "reference" in results:
            ref, cur = results["reference"], results["current"]
            print(f"\nspeed-up (wall): {ref[0] / cur[0]:.2f}x; CPU time: {ref[1] / cur[1]:.2f}x less")
            print(f"if {workers} cores were free (CPU time / {workers}, an upper bound): reference "
                  f"{n_test * workers / ref[1]:.1f} images/s, current {n_test * workers / cur[1]:.1f} images/s")
            for m in METRICS:
                print(f"  {m}: {100 * means['current'][m]:.3f} vs {100 * means['reference'][m]:.3f} "
                      f"(difference {100 * (means['current'][m] - means['reference'][m]):+.4f} points)")
            print(f"largest difference between the two sets of float16 maps: "
                  f"{map_difference(ref[2], cur[2]):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
