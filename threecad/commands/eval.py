"""``threecad eval PREDS``: score a submission of anomaly maps."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

from ..errors import UsageError
from ._common import categories_from_args, data_root_from_args, label_map_from_args, show_progress


def score_submission(preds, data_root, *, protocol_name="standard", categories=None, label_map=None,
                     workers=None, progress=False, command=None, scheduler=None, n_workers=None, client=None,
                     chunk_size=None, report=None, observer=None):
    """Deprecated: :meth:`threecad.eval.api.Evaluator.score`, as the results.json object (a dict).

    Kept so that existing callers keep working; new code uses the Evaluator.
    """
    from threecad.eval.api import Evaluator

    evaluator = Evaluator(data_root, protocol=protocol_name, categories=categories, label_map=label_map,
                          threads=workers, progress=progress, client=client, scheduler=scheduler,
                          n_workers=n_workers, chunk_size=chunk_size)
    results = evaluator.score(preds, command=command, observer=observer)
    if report is not None:
        report.update(evaluator.last_report)
    return results.to_dict()


def _traffic(report) -> str:
    """One line: what the cluster's tasks sent back, against the map files they read."""
    tasks = report["pass1_tasks"] + report["pass2_tasks"] + report["sum_tasks"]
    sent = report["pass1_result_bytes"] + report["pass2_result_bytes"]
    read = report["pass1_map_bytes"] + report["pass2_map_bytes"]
    truth = (f"ground truth: {report['truth_tasks']}, its summary {report['summary_bytes'] / 1e6:.1f} MB"
             if report["summary_bytes"] else f"ground truth: {report['truth_tasks']}")
    return (f"cluster: {tasks} tasks (pass 1: {report['pass1_tasks']}, pass 2: {report['pass2_tasks']}, "
            f"sums: {report['sum_tasks']}; {truth}); results "
            f"{sent / 1e6:.1f} MB ({sent / max(tasks, 1) / 1e3:.1f} kB per task; pass 1 "
            f"{report['pass1_result_bytes'] / max(report['pass1_tasks'], 1) / 1e3:.1f} kB, pass 2 "
            f"{report['pass2_result_bytes'] / max(report['pass2_tasks'] + report['sum_tasks'], 1) / 1e3:.1f} kB) "
            f"for {read / 1e6:.0f} MB of map files read ({read / max(sent, 1):.0f}x)")


def _default_out(preds: Path) -> Path:
    """``PREDS/results`` for a folder, ``NAME-results`` beside ``NAME.zip``."""
    return preds / "results" if preds.is_dir() else preds.with_name(f"{preds.name.removesuffix('.zip')}-results")


def _process_start() -> float | None:
    """When this process started, on the ``time.perf_counter()`` clock (Linux; else None)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, ticks after boot
    except (OSError, ValueError, IndexError):
        return None
    return time.perf_counter() - max(uptime - started, 0.0)


def run(args) -> int:
    """Run the command; return the exit code."""
    timer = None
    if getattr(args, "timings", False):
        from threecad.eval.timing import PhaseTimer

        timer = PhaseTimer(origin=_process_start())
        timer.begin("imports")
    from threecad.eval.api import Evaluator
    from threecad.eval.archive import is_archive
    from threecad.eval.heap import reuse_freed_memory
    from threecad.eval.results import check_output_folder, write_results

    if timer is not None:
        import pandas  # noqa: F401  (the manifest's; imported here, its time is not the scan's)

        timer.end()

    preds = Path(args.preds)
    if not preds.is_dir() and not is_archive(preds):
        raise UsageError(f"{preds} is neither a folder of anomaly maps nor a .zip of one "
                         f"(see 'threecad eval --help')")
    data_root = data_root_from_args(args)
    scheduler = getattr(args, "scheduler", None)
    n_workers = getattr(args, "workers", None)
    if n_workers is not None and n_workers < 1:
        raise UsageError(f"--workers needs at least 1 worker, got {n_workers}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads needs at least 1 thread, got {args.threads}")
    if args.plots and (scheduler or n_workers is not None):
        raise UsageError("--plots draws the curves in this process; drop --workers/--scheduler")
    out = check_output_folder(Path(args.out) if args.out else _default_out(preds))  # before scoring
    reuse_freed_memory()  # images' large arrays reused, not zeroed again by the kernel (eval.heap)
    gc.freeze()  # the modules' objects, left out of every later collection (scoring makes few cycles)
    start = time.perf_counter()
    evaluator = Evaluator(data_root, protocol=args.protocol, categories=categories_from_args(args),
                          label_map=label_map_from_args(args), threads=args.threads, progress=show_progress(args),
                          scheduler=scheduler, n_workers=n_workers,
                          lean_warm_up=True)  # this process runs no numba code but the engine's
    curves = None
    if args.plots:  # the curves are kept while each category is scored, in this process
        from threecad.eval.figures import CurveCollector

        curves = CurveCollector(fpr_limit=evaluator.protocol.fpr_limit)
    results = evaluator.score(preds, command=["threecad", *sys.argv[1:]], observer=curves, timer=timer)
    if timer is not None:
        timer.begin("write the results")
    paths = write_results(results, out)
    if timer is not None:
        timer.end()
    if curves is not None:
        from threecad.eval.figures import write_curve_plots

        paths += write_curve_plots(curves.curves, args.plots, method=results.method)
    sys.stdout.write(results.to_json() if args.json else results.to_text())
    if evaluator.last_report:
        print(_traffic(evaluator.last_report), file=sys.stderr)
    print(f"scored {results.n_images} maps in {time.perf_counter() - start:.1f} s; wrote "
          f"{', '.join(str(p) for p in paths)}", file=sys.stderr)
    if timer is not None:
        print(f"time per phase (--timings):\n{timer.report()}", file=sys.stderr)
    return 0
