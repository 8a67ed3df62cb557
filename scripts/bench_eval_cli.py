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

It checks that the two agree to 1e-9 and prints the ratio (the issue's target: >= 30x),
then where the command's time went:

* the phases, as ``threecad eval --timings`` prints them (start-up, scan, validation, each
  category's read / count / metrics, results);
* the CPU split (``--split``, on by default; a second run of the command, instrumented):
  CPU seconds inside the counting engine (``eval/engine.py``, ``eval/curves.py``,
  ``eval/metrics.py``), inside the pixel statistics around it (``eval/pixels.py``), and
  everything else (start-up, scan, reading, hashing and checking maps, masks, regions, the
  per-image table, results).

    python scripts/bench_eval_cli.py [--maps 400] [--size 512] [--dtype float32] [--keep DIR] [--no-split]
                                     [--repeat N] [--no-sklearn]

With ``--repeat N`` the command runs N times and the fastest run counts (its phases are
printed; the median is shown beside it): on shared cores one run can be slowed by others.
``--no-sklearn`` times the command alone (while iterating; no ratio).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORY = "Aluminum_Ipad"

# Run in a child: the CLI with every function of the engine modules and of eval/pixels.py
# wrapped to add up its thread CPU time (time in nested calls goes to the innermost module).
_SPLIT_CHILD = r"""
import functools, json, resource, sys, threading, time
import threecad.eval.api  # noqa: F401  (imports every module to patch)
ENGINE = {"threecad.eval.engine": "engine", "threecad.eval.curves": "engine", "threecad.eval.metrics": "engine",
          "threecad.eval.pixels": "pixels"}
totals = {"engine": 0.0, "pixels": 0.0}
lock, local = threading.Lock(), threading.local()

def wrap(f, kind):
    @functools.wraps(f)
    def g(*a, **k):
        stack = local.__dict__.setdefault("stack", [])
        frame = [time.thread_time(), 0.0]
        stack.append(frame)
        try:
            return f(*a, **k)
        finally:
            stack.pop()
            spent = time.thread_time() - frame[0]
            if stack:
                stack[-1][1] += spent
            with lock:
                totals[kind] += spent - frame[1]
    g.__wrapped_kind__ = kind
    return g

def kind_of(obj):
    return ENGINE.get(getattr(obj, "__module__", None)) if type(obj).__name__ == "function" else None

done = {}
for cls_mod in list(ENGINE):
    mod = sys.modules[cls_mod]
    for name, cls in list(vars(mod).items()):
        if isinstance(cls, type) and cls.__module__ == cls_mod:
            for attr, member in list(vars(cls).items()):
                if attr.startswith("__") and attr != "__init__":
                    continue
                if isinstance(member, classmethod) and kind_of(member.__func__):
                    setattr(cls, attr, classmethod(wrap(member.__func__, ENGINE[cls_mod])))
                elif isinstance(member, staticmethod) and kind_of(member.__func__):
                    setattr(cls, attr, staticmethod(wrap(member.__func__, ENGINE[cls_mod])))
                elif kind_of(member):
                    setattr(cls, attr, wrap(member, ENGINE[cls_mod]))
for mod_name, mod in list(sys.modules.items()):
    if not mod_name.startswith("threecad.") or mod is None:
        continue
    for name, obj in list(vars(mod).items()):
        kind = kind_of(obj)
        if kind and not hasattr(obj, "__wrapped_kind__"):
            setattr(mod, name, done.setdefault(id(obj), wrap(obj, kind)))
from threecad.cli import main
code = main(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_SELF)
print("SPLIT " + json.dumps({**totals, "process_cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)
sys.exit(code)
"""


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


def print_split(cmd: list[str], tmp: Path) -> None:
    """Run the command again, instrumented, and print its CPU split (engine / pixels.py / the rest)."""
    split_cmd = [sys.executable, "-c", _SPLIT_CHILD, *cmd[3:-1]]
    split_cmd[split_cmd.index("--out") + 1] = str(tmp / "results-split")
    proc = subprocess.run(split_cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("SPLIT ")]
    if proc.returncode != 0 or not lines:
        print(f"CPU split: the instrumented run failed\n{proc.stderr[-2000:]}", file=sys.stderr)
        return
    split = json.loads(lines[-1][len("SPLIT "):])
    total = split["process_cpu"]
    rest = total - split["engine"] - split["pixels"]
    print(f"\nCPU split of an instrumented second run ({total:.2f} s CPU in all, start-up included):")
    for name, value in (("counting engine (eval/engine.py, curves.py, metrics.py)", split["engine"]),
                        ("pixel statistics around it (eval/pixels.py)", split["pixels"]),
                        ("everything else (start-up, scan, read + hash + check maps, masks, results)", rest)):
        print(f"  {name:<80} {value:7.2f} s  {100 * value / total:5.1f} %")


def print_timings(stderr: str, t_cli: float, cmd: list[str], tmp: Path, split: bool) -> None:
    """The command's own phase table (from its ``--timings`` output), then the CPU split."""
    print(f"\nthreecad eval's own timings (--timings; the process took {t_cli:.2f} s wall):")
    print(stderr.split("time per phase (--timings):\n", 1)[-1].rstrip())
    if split:
        print_split(cmd, tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the tree here and keep it")
    parser.add_argument("--split", action=argparse.BooleanOptionalAction, default=True,
                        help="run the command a second time, instrumented, for the CPU split (default: on)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the command this many times; the ratio uses the fastest run, and the "
                             "median is printed too (timings on shared cores are noisy)")
    parser.add_argument("--sklearn", action=argparse.BooleanOptionalAction, default=True,
                        help="measure scikit-learn (about 100 s at the default size); without it only "
                             "the command is timed (default: on)")
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
               "--out", str(tmp / "results"), "--timings"]
        runs = []  # (wall, CPU, the command's stderr) of each run
        for _ in range(max(1, args.repeat)):
            shutil.rmtree(tmp / "results", ignore_errors=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            t_run = time.perf_counter() - t0
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            runs.append((t_run, usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, proc.stderr))
        t_cli, cpu_cli, stderr = min(runs)
        ours = json.loads((tmp / "results" / "results.json").read_text())["categories"][CATEGORY]
        repeat = (f" (fastest of {len(runs)} runs; median {statistics.median(r[0] for r in runs):.2f} s wall, "
                  f"{statistics.median(r[1] for r in runs):.2f} s CPU)" if len(runs) > 1 else "")
        print(f"threecad eval (whole CLI from disk): {t_cli:.2f} s wall, {cpu_cli:.2f} s CPU{repeat}; "
              f"P-AUROC {ours['pixel_auroc']:.9f} "
              f"P-AP {ours['pixel_ap']:.9f} AUPRO {ours['aupro']:.9f}")
        if not args.sklearn:
            print_timings(stderr, t_cli, cmd, tmp, args.split)
            return 0

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
        print_timings(stderr, t_cli, cmd, tmp, args.split)
        return 0 if d < 1e-9 else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
