#!/usr/bin/env python
"""Benchmark CFRG: training images/s and inference images/s on one device.

Training: the real optimiser step (synthetic anomalies on the device, teacher on the augmented
and clean images, student, recovery, segmentation head, three losses, Adam; bf16 and
channels-last on CUDA) on images decoded once into device memory, as ``threecad train`` does.
Inference: ``threecad predict``'s path end to end (decoding and resizing in data-loader workers,
batched forward, map and Gaussian on the device, float16 maps back on the host), over the test
images of the tree repeated up to ``--infer-images``; plus the model alone on device tensors.
Then projects the targets: 50 epochs of 2,000 images, and the 16,546 images of the 3CAD test set.

    python scripts/bench_cfrg.py --device cpu --batch-size 2 --image-size 64 --steps 3 --scale tiny
    python scripts/bench_cfrg.py --device cuda --batch-size 32 --steps 30 --infer-images 4000 --root /data/3CAD
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from _sample import add_sample_arguments, tree_to_measure  # noqa: E402

TRAIN_IMAGES, EPOCHS, TEST_IMAGES = 2_000, 50, 16_546  # the targets of issue 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sample_arguments(parser)
    parser.set_defaults(scale="tiny")
    parser.add_argument("--device", default="cuda", help="cuda or cpu (default cuda; CPU with a warning if none)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--infer-batch-size", type=int, default=None, help="default: --batch-size")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--infer-images", type=int, default=64, help="test images to predict (repeated as needed)")
    parser.add_argument("--loader-workers", type=int, default=None, help="data-loader processes (default: CPUs-1)")
    parser.add_argument("--category", default=None, help="category to take images from (default: the first)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    import torch

    from threecad.reference_models.cfrg.config import CFRGConfig
    from threecad.reference_models.cfrg.data import load_images, normalise
    from threecad.reference_models.cfrg.device import resolve_device
    from threecad.reference_models.cfrg.predict import predict_maps
    from threecad.reference_models.cfrg.train import autocast, build_model, make_optimizer, train_step
    from threecad.manifest import load_manifest

    device = resolve_device(args.device)
    config = CFRGConfig(image_size=args.image_size, batch_size=args.batch_size)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, " \
                                                                             f"{torch.get_num_threads()} threads)"
    with tempfile.TemporaryDirectory() as tmp:
        root = tree_to_measure(args, tmp)
        manifest = load_manifest(root, categories=[args.category] if args.category else None)
        rows = manifest[manifest["category"] == manifest["category"].iloc[0]]
        train_paths = rows[rows["split"] == "train"]["image_path"].tolist()
        test_paths = manifest[manifest["split"] == "test"]["image_path"].tolist()
        print(f"device: {name}; torch {torch.__version__}; image {args.image_size}x{args.image_size}, "
              f"batch {args.batch_size}, bf16 autocast {'on' if device.type == 'cuda' and config.amp else 'off'}")

        torch.manual_seed(0)
        model = build_model(config, None, device).train()  # untrained teacher: same cost as the real one
        opt, _ = make_optimizer(model, config)
        images = load_images(train_paths, config.image_size, device=device, workers=args.loader_workers)
        reps = -(-args.batch_size // len(images))
        pool = images.repeat(reps, 1, 1, 1)[: max(args.batch_size, len(images))]
        gen = torch.Generator(device=device).manual_seed(0)

        def step(i: int) -> None:
            idx = torch.arange(i * args.batch_size, (i + 1) * args.batch_size, device=device) % len(pool)
            train_step(model, opt, pool[idx], config, gen)

        for i in range(args.warmup):
            step(i)
        sync()
        t0 = time.perf_counter()
        for i in range(args.steps):
            step(i)
        sync()
        train_s = time.perf_counter() - t0
        train_rate = args.steps * args.batch_size / train_s
        print(f"training: {args.steps} steps of {args.batch_size} in {train_s:.2f} s: {train_rate:.1f} images/s")

        model.eval()
        ib = args.infer_batch_size or args.batch_size
        x = normalise(pool[:ib].float() / 255, channels_last=device.type == "cuda" and config.channels_last)
        from threecad.reference_models.cfrg.maps import anomaly_maps

        with torch.no_grad():
            for _ in range(2):
                with autocast(device, config):
                    out = model(x)
                anomaly_maps(out, config.image_size, config.smooth_sigma)
            sync()
            reps = max(1, args.steps)
            t0 = time.perf_counter()
            for _ in range(reps):
                with autocast(device, config):
                    out = model(x)
                anomaly_maps(out, config.image_size, config.smooth_sigma).to(torch.float16).cpu()
            sync()
        model_rate = reps * ib / (time.perf_counter() - t0)
        print(f"inference, model only (maps to host): {model_rate:.1f} images/s")

        paths = (test_paths * (-(-args.infer_images // len(test_paths))))[: args.infer_images]
        t0 = time.perf_counter()
        n = sum(1 for _ in predict_maps(model, config, paths, device=device, batch_size=ib,
                                        workers=args.loader_workers))
        sync()
        infer_rate = n / (time.perf_counter() - t0)
        print(f"inference, end to end (decoding {n} test images of {root} included): {infer_rate:.1f} images/s")

    train_min = EPOCHS * TRAIN_IMAGES / train_rate / 60
    print(f"projection: {EPOCHS} epochs x {TRAIN_IMAGES:,} images: {train_min:.1f} min of steps "
          f"(target < 5 min on one H200); 3CAD test set ({TEST_IMAGES:,} images): "
          f"{TEST_IMAGES / infer_rate:.0f} s (target < 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
