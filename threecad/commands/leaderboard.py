"""``threecad leaderboard SUBMISSION...``: score several submissions on one ground truth and rank them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import EXIT_DATA, UsageError
from ._common import categories_from_args, data_root_from_args, label_map_from_args, show_progress


def _check_flags(args) -> None:
    """The option combinations the library would refuse, said in the command's flags."""
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap needs a positive number of resamples, got {args.bootstrap}")
    if args.compare and not args.bootstrap:
        raise UsageError("--compare needs --bootstrap N (the paired test uses the bootstrap resamples)")
    if not 0.0 < args.confidence < 1.0:
        raise UsageError(f"--confidence must be between 0 and 1, got {args.confidence}")


def run(args) -> int:
    """Run the command; return the exit code (1 when some submission was invalid)."""
    from threecad.eval.leaderboard import LEADERBOARD_FILES, render_leaderboard, score_leaderboard, write_leaderboard
    from threecad.eval.results import check_output_folder

    _check_flags(args)
    data_root = data_root_from_args(args)
    categories = categories_from_args(args)
    out = check_output_folder(Path(args.out), LEADERBOARD_FILES, allow_folders=True)  # before scoring
    start = time.perf_counter()
    board = score_leaderboard(
        args.submissions, data_root, protocol_name=args.protocol, categories=categories,
        label_map=label_map_from_args(args), workers=args.threads, progress=show_progress(args),
        command=["threecad", *sys.argv[1:]], n_resamples=args.bootstrap, seed=args.seed,
        confidence=args.confidence, compare=[tuple(p) for p in (args.compare or [])],
        include_published=args.include_published, rank_by=args.rank_by, keep_curves=bool(args.html))
    paths = write_leaderboard(board, out)
    if args.html:
        from threecad.eval.html import write_html

        paths.append(write_html(board, Path(args.html)))
    sys.stdout.write(render_leaderboard(board, markdown=False))
    n_ok = sum(e.scored for e in board.entries)
    print(f"scored {n_ok} of {len(board.entries)} submissions in {time.perf_counter() - start:.1f} s; "
          f"wrote {len(paths)} files under {args.out}", file=sys.stderr)
    if board.any_invalid:
        bad = ", ".join(e.source for e in board.entries if not e.scored)
        print(f"threecad leaderboard: invalid submissions: {bad} (see leaderboard.md)", file=sys.stderr)
        return EXIT_DATA
    return 0
