#!/usr/bin/env python
"""Benchmark building the FiftyOne dataset of ``threecad view`` on the synthetic sample.

Prints samples per second for the build (masks read in threads, masks as files, samples
added in batches) and for adding a synthetic submission (heatmap files, per-sample
results), then adding the same submission again (cached by its digest), and, as a reference measured in the same run, the naive build: the same samples in one thread,
masks stored as arrays in the database, samples added one by one (``dataset.add_sample``).
Compare the ratio, not absolute times: these machines are noisy. Starts its own mongod in
a temporary folder (nothing is written elsewhere).

    python scripts/bench_view.py [--scale small] [--seed 0] [--workers N] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _sample import add_sample_arguments, tree_to_measure


def naive_build(fo, manifest, name: str, media_dir: Path) -> float:
    """Reference: the same samples, built in one thread, the mask stored as an array in the
    database (``Segmentation(mask=...)``), added one by one (``dataset.add_sample``)."""
    import numpy as np

    from threecad.fiftyone.build import _sample, ground_truth_record
    from threecad.regions import read_mask

    dataset = fo.Dataset(name)
    start = time.perf_counter()
    for row in manifest.to_dict("records"):
        gt = ground_truth_record(row, media_dir, name)
        sample = _sample(fo, row, gt, ())
        if row["mask_paths"]:
            union = np.zeros((int(row["height"]), int(row["width"])), np.uint8)
            for p in row["mask_paths"]:
                union[read_mask(p) > 0] = 255
            sample["ground_truth"] = fo.Segmentation(mask=union)
        dataset.add_sample(sample)
    return time.perf_counter() - start


def naive_heatmaps(fo, name: str, preds: Path) -> float:
    """Reference for a submission: each map as an array in the database, samples saved one by one."""
    from threecad.eval.mapio import read_map

    dataset = fo.load_dataset(name)
    start = time.perf_counter()
    for sample in dataset:
        amap = read_map(preds / f"{sample.image_id}.npy").astype("float32")
        sample["naive_heatmap"] = fo.Heatmap(map=amap, range=[float(amap.min()), float(amap.max())])
        sample.save()
    return time.perf_counter() - start


def warm(manifest) -> None:
    """Read every image and mask once, so that both builds find them in the page cache."""
    for row in manifest.to_dict("records"):
        for p in (row["image_path"], *row["mask_paths"]):
            Path(p).read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sample_arguments(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-view-") as tmp:
        tmp = Path(tmp)
        os.environ["HOME"] = str(tmp / "home")
        from threecad.fiftyone.db import configure_fiftyone_env, start_mongod

        root = tree_to_measure(args, tmp)
        server = start_mongod(tmp / "db")
        try:
            configure_fiftyone_env(server.uri, home=tmp / "fiftyone")
            return _run(args, root, tmp)
        finally:
            server.stop()


def _run(args, root: Path, tmp: Path) -> int:
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.fiftyone.api import build_view_dataset
    from threecad.fiftyone.env import import_fiftyone
    from threecad.manifest import load_manifest

    fo = import_fiftyone()
    manifest = load_manifest(root)
    test = manifest[manifest["split"] == "test"]
    preds = write_synthetic_submission(manifest, tmp / "preds")
    n = len(test)
    n_def = int((test["label"] == "defect").sum())
    print(f"tree: {root} ({n} test images, {n_def} defective; {os.cpu_count()} CPUs, "
          f"workers {args.workers or 'all'})")

    warm(test)
    dataset, report = build_view_dataset(root, media_dir=tmp / "media", name="bench-fast", workers=args.workers)
    build_s = report.build.seconds
    print(f"threecad view build:   {n / build_s:8.0f} samples/s ({build_s:.2f} s; masks as files, threads, batches)")
    again, rerun = build_view_dataset(root, media_dir=tmp / "media", name="bench-fast", workers=args.workers)
    print(f"  update, nothing changed: {rerun.build.seconds:.2f} s ({rerun.build.unchanged} samples kept)")
    _, with_preds = build_view_dataset(root, preds=[preds], media_dir=tmp / "media", name="bench-fast",
                                       workers=args.workers)
    pred_s = with_preds.predictions[0].seconds
    print(f"  + submission:         {n / pred_s:8.0f} samples/s ({pred_s:.2f} s; heatmap files, per-sample results)")
    _, cached = build_view_dataset(root, preds=[preds], media_dir=tmp / "media", name="bench-fast",
                                   workers=args.workers)
    cached_pr = cached.predictions[0]
    print(f"  same submission again: {cached_pr.seconds:.2f} s (cached by its digest: {cached_pr.cached}; "
          f"{pred_s / max(cached_pr.seconds, 1e-9):.0f}x faster than computing it)")
    naive_s = naive_build(fo, test, "bench-naive", tmp / "media-naive")
    print(f"naive build:           {n / naive_s:8.0f} samples/s ({naive_s:.2f} s; one by one, mask arrays in the db)")
    naive_pred_s = naive_heatmaps(fo, "bench-naive", preds)
    print(f"  + submission:         {n / naive_pred_s:8.0f} samples/s ({naive_pred_s:.2f} s; map arrays in the db, "
          f"no per-sample results)")
    print(f"ratio (threecad view / naive): build {naive_s / build_s:.1f}x, "
          f"build + submission {(naive_s + naive_pred_s) / (build_s + pred_s):.1f}x")
    fast_docs = dataset._sample_collection
    naive_docs = fo.load_dataset("bench-naive")._sample_collection
    size = fast_docs.database.command("collStats", fast_docs.name)["size"]
    naive_size = naive_docs.database.command("collStats", naive_docs.name)["size"]
    print(f"database: {size / 1e6:.1f} MB with files vs {naive_size / 1e6:.1f} MB with arrays "
          f"({size / n / 1e3:.1f} vs {naive_size / n / 1e3:.1f} kB per sample)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
