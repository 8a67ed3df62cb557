"""``threecad eval PREDS``: score a submission of anomaly maps."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import UsageError
from ..paths import DATA_ROOT_ENV, default_data_root
from ._common import label_map_from_args, show_progress


def score_submission(preds, data_root, *, protocol_name="standard", categories=None, label_map=None,
                     workers=None, progress=False, command=None):
    """Validate and score a submission; return the results object (nothing written)."""
    from eval.evaluate import evaluate_submission
    from eval.protocols import get_protocol
    from eval.results import build_results
    from eval.submission import SubmissionError, load_submission

    from ..manifest import raise_on_errors, scan

    protocol = get_protocol(protocol_name)
    scan_result = scan(data_root, label_map=label_map)
    raise_on_errors(scan_result.errors, f"the ground truth at {scan_result.root} has problems")
    try:
        submission = load_submission(preds, scan_result.manifest, categories=categories, progress=progress)
    except SubmissionError:
        # Structural problems: read every map too, so that all problems are listed at once.
        load_submission(preds, scan_result.manifest, categories=categories, check_contents=True,
                        workers=workers, progress=progress)
        raise
    evaluations = evaluate_submission(submission, scan_result.manifest, protocol, workers=workers,
                                      progress=progress)
    return build_results(submission, evaluations, protocol, data_root=scan_result.root, command=command)


def run(args) -> int:
    """Run the command; return the exit code."""
    from eval.results import render_tables, results_json, write_results

    preds = Path(args.preds)
    if not preds.is_dir():
        raise UsageError(f"{preds} is not a folder of anomaly maps (see 'threecad eval --help')")
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    if not data_root.is_dir():
        raise UsageError(f"no dataset at {data_root}: pass --data-root ROOT or set ${DATA_ROOT_ENV} "
                         f"(or fetch it with 'threecad download')")
    categories = [c for part in (args.categories or []) for c in part.split(",") if c] or None
    start = time.perf_counter()
    results = score_submission(preds, data_root, protocol_name=args.protocol, categories=categories,
                               label_map=label_map_from_args(args), workers=args.workers,
                               progress=show_progress(args), command=["threecad", *sys.argv[1:]])
    out = Path(args.out) if args.out else preds / "results"
    paths = write_results(results, out)
    if args.json:
        sys.stdout.write(results_json(results))
    else:
        sys.stdout.write(render_tables(results, markdown=False))
    print(f"scored {sum(c['n_images'] for c in results['categories'].values())} maps in "
          f"{time.perf_counter() - start:.1f} s; wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
