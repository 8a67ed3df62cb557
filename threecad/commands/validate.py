"""``threecad validate ROOT``: audit a tree; print every problem as a table or as JSON."""

from __future__ import annotations

import json
import sys

from ._common import label_map_from_args, show_progress


def run(args) -> int:
    """Run the command; return the exit code (0 no errors, 1 errors found)."""
    from ..validate import render_table, validate

    report = validate(args.root, categories=args.categories, label_map=label_map_from_args(args),
                      expect=args.expect, near_duplicates=not args.no_near_duplicates,
                      workers=args.threads, progress=show_progress(args))
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render_table(report))
    return report.exit_code
