"""``threecad leaderboard SUBMISSION...``: score several submissions on one ground truth and rank them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import EXIT_DATA
from ._common import categories_from_args, data_root_from_args, label_map_from_args, show_progress


def run(args) -> int:
    """Run the command; return the exit code (1 when some submission was invalid)."""
    from threecad.eval.leaderboard import render_leaderboard, score_leaderboard, write_leaderboard

    data_root = data_root_from_args(args)
    categories = categories_from_args(args)
    start = time.perf_counter()
    board = score_leaderboard(
        args.submissions, data_root, protocol_name=args.protocol, categories=categories,
        label_map=label_map_from_args(args), workers=args.threads, progress=show_progress(args),
        command=["threecad", *sys.argv[1:]], n_resamples=args.bootstrap, seed=args.seed,
        confidence=args.confidence, compare=[tuple(p) for p in (args.compare or [])],
        include_published=args.include_published, rank_by=args.rank_by, keep_curves=bool(args.html))
    paths = write_leaderboard(board, Path(args.out))
    if args.html:
        from threecad.eval.html import write_html

        paths.append(write_html(board, Path(args.html)))
    sys.stdout.write(render_leaderboard(board))
    n_ok = sum(e.status == "scored" for e in board.entries)
    print(f"scored {n_ok} of {len(board.entries)} submissions in {time.perf_counter() - start:.1f} s; "
          f"wrote {len(paths)} files under {args.out}", file=sys.stderr)
    if board.any_invalid:
        bad = ", ".join(e.source for e in board.entries if e.status != "scored")
        print(f"threecad leaderboard: invalid submissions: {bad} (see leaderboard.md)", file=sys.stderr)
        return EXIT_DATA
    return 0
