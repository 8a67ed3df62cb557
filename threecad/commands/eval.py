"""``threecad eval PREDS``: score a submission of anomaly maps."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import UsageError
from ._common import categories_from_args, data_root_from_args, label_map_from_args, show_progress


def score_submission(preds, data_root, *, protocol_name="standard", categories=None, label_map=None,
                     workers=None, progress=False, command=None, scheduler=None, n_workers=None, client=None,
                     chunk_size=None, report=None, observer=None):
    """Validate and score a submission; return the results object (nothing written).

    In this process by default (``workers`` threads). On a Dask cluster with ``client``
    (connected), ``scheduler`` (its address) or ``n_workers`` (a local cluster of that many
    worker processes, started here and closed at the end); the result is identical. The
    submission is validated before any cluster is started or any task is submitted.
    ``report``, a dict, receives the cluster's traffic figures (see
    :class:`eval.distributed.DistributedScorer`). ``observer`` (in this process only) sees
    every image while it is scored (:class:`eval.bootstrap.BootstrapObserver`).
    """
    from threecad.eval.protocols import get_protocol
    from threecad.eval.submission import validate_submission

    from ..manifest import raise_on_errors, scan

    on_cluster = client is not None or bool(scheduler) or n_workers is not None
    if on_cluster and observer is not None:
        raise UsageError("bootstrap statistics are computed in this process only (no Dask cluster)")
    if on_cluster and client is None:
        from threecad.eval.distributed import require_dask

        require_dask()
        if n_workers is not None and n_workers < 1:
            raise UsageError(f"--workers needs at least 1 worker, got {n_workers}")
    protocol = get_protocol(protocol_name)
    scan_result = scan(data_root, label_map=label_map)
    raise_on_errors(scan_result.errors, f"the ground truth at {scan_result.root} has problems")
    submission = validate_submission(preds, scan_result.manifest, categories=categories, workers=workers,
                                     progress=progress)
    if not on_cluster:
        from threecad.eval.evaluate import evaluate_submission
        from threecad.eval.results import build_results

        evaluations = evaluate_submission(submission, scan_result.manifest, protocol, workers=workers,
                                          progress=progress, observer=observer)
        return build_results(submission, evaluations, protocol, data_root=scan_result.root, command=command)

    from contextlib import nullcontext

    from threecad.eval.distributed import DEFAULT_CHUNK_SIZE, DistributedScorer, cluster_client

    connect = nullcontext(client) if client is not None else cluster_client(scheduler=scheduler, n_workers=n_workers)
    with connect as c:
        # an existing scheduler keeps the ground truth published for later runs
        scorer = DistributedScorer(c, scan_result, protocol, data_root=scan_result.root, progress=progress,
                                   chunk_size=chunk_size or DEFAULT_CHUNK_SIZE, publish=bool(scheduler))
        results = scorer.score(submission, command=command)
        if report is not None:
            report.update(scorer.last_report)
        return results


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


def run(args) -> int:
    """Run the command; return the exit code."""
    from threecad.eval.results import render_tables, results_json, write_results

    from threecad.eval.archive import is_archive, submission_folder

    preds = Path(args.preds)
    if not preds.is_dir() and not is_archive(preds):
        raise UsageError(f"{preds} is neither a folder of anomaly maps nor a .zip of one "
                         f"(see 'threecad eval --help')")
    data_root = data_root_from_args(args)
    scheduler = getattr(args, "scheduler", None)
    n_workers = getattr(args, "workers", None)
    if scheduler or n_workers is not None:
        from threecad.eval.distributed import require_dask  # imports no Dask

        require_dask()
        if n_workers is not None and n_workers < 1:
            raise UsageError(f"--workers needs at least 1 worker, got {n_workers}")
    categories = categories_from_args(args)
    curves = None
    if getattr(args, "plots", None):  # the curves are kept while each category is scored, in this process
        if scheduler or n_workers is not None:
            raise UsageError("--plots draws the curves in this process; drop --workers/--scheduler")
        from threecad.eval.figures import CurveCollector
        from threecad.eval.protocols import get_protocol

        curves = CurveCollector(fpr_limit=get_protocol(args.protocol).fpr_limit)
    start = time.perf_counter()
    report: dict = {}
    with submission_folder(preds) as folder:
        results = score_submission(folder, data_root, protocol_name=args.protocol, categories=categories,
                                   label_map=label_map_from_args(args), workers=args.threads,
                                   progress=show_progress(args), command=["threecad", *sys.argv[1:]],
                                   scheduler=scheduler, n_workers=n_workers, report=report, observer=curves)
    out = Path(args.out) if args.out else \
        (preds / "results" if preds.is_dir() else preds.with_name(f"{preds.name.removesuffix('.zip')}-results"))
    paths = write_results(results, out)
    if curves is not None:
        from threecad.eval.figures import write_curve_plots

        paths += write_curve_plots(curves.curves, args.plots, method=results["method"])
    if args.json:
        sys.stdout.write(results_json(results))
    else:
        sys.stdout.write(render_tables(results, markdown=False))
    if report:
        print(_traffic(report), file=sys.stderr)
    print(f"scored {sum(c['n_images'] for c in results['categories'].values())} maps in "
          f"{time.perf_counter() - start:.1f} s; wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
