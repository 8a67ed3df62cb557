"""``threecad verify RESULTS.json SUBMISSION``: re-score and confirm a results file."""

from __future__ import annotations

import sys

from ..errors import EXIT_DATA, UsageError
from ._common import data_root_from_args, label_map_from_args, show_progress


def run(args) -> int:
    """Run the command; return 0 when everything agrees, 1 when something differs."""
    from threecad.eval.verify import MAX_SHOWN, NoDatasetError, verify_results

    # without --data-root: the folder results.json records, else $THREECAD_ROOT / the download folder
    data_root = data_root_from_args(args) if args.data_root else None
    try:
        report = verify_results(args.results, args.submission, data_root, label_map=label_map_from_args(args),
                                workers=args.threads, progress=show_progress(args))
    except NoDatasetError as exc:
        raise UsageError(f"{exc} with --data-root ROOT (or set $THREECAD_ROOT)") from None
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.ok:
        print(f"verified: {args.results} matches {args.submission} ({report.n_values} recorded values and "
              f"digests agree)")
        return 0
    print(f"NOT verified: {len(report.differences)} difference(s) between {args.results} and a re-scoring of "
          f"{args.submission}:")
    for line in report.differences[:MAX_SHOWN]:
        print(f"  {line}")
    if len(report.differences) > MAX_SHOWN:
        print(f"  ... and {len(report.differences) - MAX_SHOWN} more")
    return EXIT_DATA
