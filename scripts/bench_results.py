"""What the per-image table costs: ``threecad eval``'s scoring with and without its pass-2 columns.

The per-image table's highest normal score and, under ``standard``, each defective image's own
exact AUPRO are measured while the maps are on the grid (pass 2). This scores one synthetic
submission of a sample (or ``--root``) with ``Evaluator(per_image=False)`` (the reference, the
scoring alone) and ``per_image=True`` (what ``threecad eval`` does), alternately, and prints the
median times and their ratio, then the time to write the result set (one rename).

    python scripts/bench_results.py --scale tiny --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sample import add_sample_arguments, tree_to_measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sample_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--protocol", default="standard", choices=("standard", "paper"))
    args = parser.parse_args()

    from threecad.eval import Evaluator
    from threecad.eval.results import write_results
    from threecad.eval.synthetic import write_synthetic_submission

    with tempfile.TemporaryDirectory() as tmp:
        root = tree_to_measure(args, tmp)
        ev_plain = Evaluator(root, protocol=args.protocol, threads=args.workers, per_image=False)
        ev_table = Evaluator(root, protocol=args.protocol, threads=args.workers, per_image=True)
        preds = write_synthetic_submission(ev_plain.manifest, Path(tmp) / "preds", seed=args.seed)
        ev_table.ground_truth  # scan both before timing
        times: dict[str, list[float]] = {"scoring alone": [], "with the per-image table": []}
        results = None
        for _ in range(args.repeats):
            for name, ev in (("scoring alone", ev_plain), ("with the per-image table", ev_table)):
                t0 = time.perf_counter()
                results = ev.score(preds, command=["bench"])
                times[name].append(time.perf_counter() - t0)
        n = results.n_images
        for name, ts in times.items():
            print(f"{name:26s} {statistics.median(ts):7.2f} s  ({n / statistics.median(ts):.1f} images/s, "
                  f"median of {len(ts)})")
        ratio = statistics.median(times["with the per-image table"]) / statistics.median(times["scoring alone"])
        print(f"ratio (per-image table / scoring alone): {ratio:.2f}x")
        t0 = time.perf_counter()
        write_results(results, Path(tmp) / "out")
        print(f"writing the result set ({len(results.images)} image rows): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
