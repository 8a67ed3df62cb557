#!/usr/bin/env python
"""Benchmark ``threecad validate`` on the synthetic sample: speed, and the near-duplicate rates.

Speed: images per second for :func:`threecad.validate.validate` and the ratio against a
naive reference measured in the same run (one thread; each image read, hashed with
hashlib.sha256 and fully decoded with Pillow; each mask decoded with Pillow). Both must find
the same byte-identical groups. Compare ratios, not absolute times: these machines are noisy.
Each is timed ``--repeat`` times after a warm-up run; the best time counts.

Near-duplicate rates (``--rates``, on by default):

* false near-duplicates among distinct shots: every pair of distinct images inside a
  category compared with :func:`threecad.validate.pixels.compare_thumbnails` (the sample's
  re-shot parts, same part with a sub-pixel shift, other lighting and other defects,
  counted separately), and the images that ``validate`` flags in the clean sample;
* detected copies among made copies: copies of some images of each category (PNG
  re-encoded, JPEG quality 90/70/50, resized to 90/75/50 %, cropped by 2 and 5 %) are
  written into a copy of the tree under ``test/good`` and ``validate`` must name each one
  as a copy of its source.

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
from threecad.validate.pixels import COPY_MAX_PEAK, COPY_MAX_RESIDUAL

COPY_LIMITS = (COPY_MAX_RESIDUAL, COPY_MAX_PEAK)


def naive_validate(manifest) -> dict[str, object]:
    """Reference: single thread, Pillow decode, hashlib; byte-identical groups."""
    from PIL import Image

    sha: dict[str, list[str]] = {}
    for rec in manifest[["image_id", "image_path"]].itertuples(index=False):
        data = Path(rec.image_path).read_bytes()
        sha.setdefault(hashlib.sha256(data).hexdigest(), []).append(rec.image_id)
        try:
            with Image.open(rec.image_path) as im:
                im.load()  # raises on a truncated file (LOAD_TRUNCATED_IMAGES is off by default)
        except (OSError, SyntaxError, ValueError):
            continue
    for paths in manifest["mask_paths"]:
        for p in paths:
            try:
                with Image.open(p) as im:
                    np.unique(np.asarray(im))
            except (OSError, SyntaxError, ValueError):
                continue
    return {"duplicate_groups": sorted(sorted(v) for v in sha.values() if len(v) > 1)}


COPY_KINDS = ("png", "jpeg90", "jpeg70", "jpeg50", "resize90", "resize75", "resize50", "crop2", "crop5")


def make_copy(image: np.ndarray, kind: str) -> np.ndarray:
    """One copy of ``image`` (as decoded by OpenCV) of the given kind."""
    import cv2

    h, w = image.shape[:2]
    if kind == "png":
        return image
    if kind.startswith("jpeg"):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(kind[4:])])
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if kind.startswith("resize"):
        f = int(kind[6:]) / 100
        return cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    f = int(kind[4:]) / 100  # crop: f of each side's length, more at the top-left than bottom-right
    return image[int(h * f):h - int(h * f / 2), int(w * f / 2):w - int(w * f)]


def distinct_pair_rates(root: Path, manifest, workers: int | None) -> dict[str, object]:
    """Pixel verdicts on every pair of distinct images inside each category."""
    import cv2

    from threecad.parallel import thread_map
    from threecad.validate.pixels import compare_thumbnails, thumbnail

    thumbs = dict(zip(manifest["image_id"], thread_map(
        lambda p: thumbnail(cv2.imread(p, cv2.IMREAD_UNCHANGED)), manifest["image_path"].tolist(),
        workers=workers)))
    pairs = [(a, b) for _, ids in manifest.groupby("category")["image_id"]
             for a, b in itertools.combinations(ids.tolist(), 2)]
    matches = thread_map(lambda ab: compare_thumbnails(thumbs[ab[0]], thumbs[ab[1]]), pairs, workers=workers)
    return {"pairs": pairs, "matches": matches}


def copy_rates(root: Path, manifest, workers: int | None, per_category: int) -> dict[str, object]:
    """Write copies into ``root`` (a scratch tree), validate it, and count the copies found."""
    import cv2

    from threecad.validate import validate

    made: dict[str, tuple[str, str]] = {}  # copy path -> (kind, source path)
    serial = 900000
    for _, rows in manifest.groupby("category"):
        picks = rows.iloc[np.linspace(0, len(rows) - 1, per_category).astype(int)]
        for rec in picks.itertuples(index=False):
            image = cv2.imread(rec.image_path, cv2.IMREAD_UNCHANGED)
            for kind in COPY_KINDS:
                out = root / rec.category / "test" / "good" / f"{serial:06d}.png"
                serial += 1
                cv2.imwrite(str(out), make_copy(image, kind), [cv2.IMWRITE_PNG_COMPRESSION, 9])
                made[str(out)] = (kind, rec.image_path)
    report = validate(root, workers=workers)
    # A warning links the flagged image with the image it names. A copy is found when such a
    # link joins it to its source or to another copy of that source (in a group of identical
    # images, which one is called the copy depends only on the order of their keys).
    group = {path: src for path, (_, src) in made.items()}
    group.update({src: src for _, src in made.values()})
    by_name = {Path(p).relative_to(root).as_posix(): p for p in group}  # as messages name them
    linked: dict[str, set[str]] = {}
    false = []
    for p in report.problems:
        if p.kind not in ("near_duplicate", "near_leakage"):
            continue
        named = [full for short, full in by_name.items() if short in p.message]
        a = str(p.path)
        if a in group and any(group.get(b) == group[a] for b in named):
            for b in named:
                linked.setdefault(a, set()).add(b)
                linked.setdefault(b, set()).add(a)
        else:
            false.append(a)
    by_kind: dict[str, list[int]] = {k: [0, 0] for k in COPY_KINDS}
    for path, (kind, src) in made.items():
        by_kind[kind][1] += 1
        by_kind[kind][0] += bool(linked.get(path))
    return {"by_kind": by_kind, "made": len(made), "false_flags": false, "report": report}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sample_arguments(parser)
    parser.add_argument("--skip-naive", action="store_true", help="only time validate")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best counts (default 3)")
    parser.add_argument("--no-rates", action="store_true", help="skip the near-duplicate rates")
    parser.add_argument("--rates-only", action="store_true",
                        help="one validate run (no warm-up, no naive reference), then the rates")
    parser.add_argument("--copies-per-category", type=int, default=4,
                        help="source images per category for the copy rate (default 4)")
    args = parser.parse_args()

    from threecad.manifest import scan
    from threecad.validate import validate

    with tempfile.TemporaryDirectory() as tmp:
        truth = None
        if args.root:
            root = tree_to_measure(args, tmp)
        else:
            from threecad.sample import write_sample

            t0 = time.perf_counter()
            truth = write_sample(Path(tmp) / "sample", seed=args.seed, scale=args.scale)
            root = truth.root
            print(f"sample ({args.scale}, seed {args.seed}) built in {time.perf_counter() - t0:.1f} s")

        if not args.rates_only:
            validate(root, workers=args.workers)  # warm-up: imports, page cache
        t_ours = float("inf")
        for _ in range(1 if args.rates_only else args.repeat):
            t0 = time.perf_counter()
            report = validate(root, workers=args.workers)
            t_ours = min(t_ours, time.perf_counter() - t0)
        n = report.summary["images"]
        workers = args.workers or os.cpu_count()
        print(f"validate: {n} images, {report.summary['masks']} masks, "
              f"{report.summary['bytes_read'] / 1e6:.0f} MB in {t_ours:.2f} s = {n / t_ours:.1f} images/s "
              f"({workers} threads; {report.summary['errors']} errors, {report.summary['warnings']} warnings)")
        nd = report.summary["near_duplicates"]
        print(f"  near-duplicates: {nd['pixel_comparisons']:,} pixel comparisons for {n} images; multi-index "
              f"{nd['pairs_compared']:,} candidate pairs vs {nd['all_pairs']:,} all pairs")
        print("  closest pairs: " + ", ".join(f"{c.distance} ({c.verdict})" for c in report.closest_pairs))

        manifest = scan(root, read_headers=False).manifest
        same = True
        if not (args.skip_naive or args.rates_only):
            t_naive = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ref = naive_validate(manifest)
                t_naive = min(t_naive, time.perf_counter() - t0)
            print(f"naive reference (sha256 + Pillow decode, no near-duplicates): {t_naive:.2f} s = "
                  f"{n / t_naive:.1f} images/s; ratio {t_naive / t_ours:.2f}")
            ours_dups = sum(1 for p in report.problems if p.kind in ("duplicate", "leakage"))
            n_dup_files = sum(len(g) - 1 for g in ref["duplicate_groups"])
            same = ours_dups == n_dup_files
            print(f"agreement: byte-identical extra copies {ours_dups} (naive {n_dup_files}) -> "
                  f"{'OK' if same else 'MISMATCH'}")
        if args.no_rates:
            return 0 if same else 1
        print_rates(root, manifest, report, args, truth)
        return 0 if same else 1


def print_rates(root: Path, manifest, report, args, truth) -> None:
    """The two near-duplicate rates (see the module notes)."""
    import shutil

    from threecad.manifest import scan

    part_of = same_part_pairs(root, manifest, truth, args.scale, args.seed)
    dist = distinct_pair_rates(root, manifest, args.workers)
    flagged_pairs = [ab for ab, m in zip(dist["pairs"], dist["matches"]) if m.copy]
    shot_pairs = [(ab, m) for ab, m in zip(dist["pairs"], dist["matches"]) if frozenset(ab) in part_of]
    n_pairs = len(dist["pairs"])
    res = np.array([m.residual for m in dist["matches"]])
    print(f"false near-duplicates among distinct images: {len(flagged_pairs)} of {n_pairs:,} pairs "
          f"({100 * len(flagged_pairs) / max(n_pairs, 1):.3f} %); smallest pixel residual "
          f"{res.min():.2f} grey levels (copy limit {COPY_LIMITS[0]})")
    if shot_pairs:
        bad = sum(1 for _, m in shot_pairs if m.copy)
        r = np.array([m.residual for _, m in shot_pairs])
        print(f"  of which distinct shots of one part: {bad} of {len(shot_pairs)} pairs called copies "
              f"({100 * bad / len(shot_pairs):.1f} %); their residuals {r.min():.2f}-{r.max():.2f}, "
              f"median {np.median(r):.2f}")
    clean_flags = sum(1 for p in report.problems if p.kind in ("near_duplicate", "near_leakage"))
    print(f"  validate on the clean tree: {clean_flags} near-duplicate warnings among {len(manifest)} images")

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "tree"
        shutil.copytree(root, scratch)
        copies = copy_rates(scratch, scan(scratch, read_headers=False).manifest, args.workers,
                            args.copies_per_category)
    found = sum(v[0] for v in copies["by_kind"].values())
    detail = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in copies["by_kind"].items())
    print(f"detected copies among made copies: {found} of {copies['made']} "
          f"({100 * found / max(copies['made'], 1):.1f} %): {detail}")
    print(f"  warnings that link images of different sources in that run (false): {len(copies['false_flags'])}")


def same_part_pairs(root: Path, manifest, truth, scale: str, seed: int) -> set[frozenset[str]]:
    """Pairs of image ids that show one part: from the sample's truth, or, for a ``--root``
    tree, from the sample plan of ``--scale``/``--seed`` (English names) where its files exist."""
    ids = set(manifest["image_id"])
    if truth is not None:
        return {frozenset((i.path[:-4], i.same_part_as[:-4])) for i in truth.images if i.same_part_as}
    from threecad.categories import CATEGORIES
    from threecad.sample.catalog import SCALE_PLANS
    from threecad.sample.plan import plan_category

    pairs = set()
    for cat in CATEGORIES:
        items = plan_category(cat, SCALE_PLANS[scale], seed)
        key = {(i.split, i.index): f"{cat.folder}/{i.split}/{i.types[0] if i.types else 'good'}/{i.stem}"
               for i in items}
        for i in items:
            if i.part is not None:
                a, b = key[(i.split, i.index)], key[i.part]
                if a in ids and b in ids:
                    pairs.add(frozenset((a, b)))
    return pairs


if __name__ == "__main__":
    sys.exit(main())
