"""``threecad sample OUT``: write the synthetic sample in the 3CAD layout."""

from __future__ import annotations

import sys
import time

from ..categories import UnknownCategoryError
from ..errors import UsageError
from ._common import show_progress


def run(args) -> int:
    """Run the command; return the exit code."""
    from ..sample import write_sample

    start = time.perf_counter()
    try:
        truth = write_sample(args.out, seed=args.seed, scale=args.scale, names=args.names,
                             categories=args.categories, progress=show_progress(args))
    except FileExistsError as exc:
        raise UsageError(f"{exc}; choose a new folder or remove it first") from None
    except UnknownCategoryError as exc:
        raise UsageError(str(exc)) from None
    n_defect = sum(1 for i in truth.images if i.types)
    print(f"wrote {len(truth.images)} images ({n_defect} defective) to {args.out} "
          f"in {time.perf_counter() - start:.1f} s (seed {args.seed}, scale {args.scale}, "
          f"{args.names} defect names)", file=sys.stderr)
    return 0
