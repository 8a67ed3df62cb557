"""``threecad stats ROOT``: the paper's dataset table for any tree."""

from __future__ import annotations

import json
import logging
import sys

from ..image_stats import compute_image_stats
from ..manifest import raise_on_errors, scan
from ..stats import compare_published, render, summarise
from ..tables import check_table_path, regions_path, write_table
from ._common import label_map_from_args, show_progress

log = logging.getLogger(__name__)


def collect_stats(root, *, categories=None, label_map=None, workers=None, progress=False):
    """Scan and measure a tree; raise ``DataError`` listing every error found on the way."""
    result = scan(root, categories=categories, label_map=label_map)
    stats = compute_image_stats(result.manifest, workers=workers, progress=progress)
    raise_on_errors([*result.problems, *stats.problems], f"cannot compute statistics: {result.root} has problems")
    return result, stats


def run(args) -> int:
    """Run the command; return the exit code."""
    labels = label_map_from_args(args)
    if args.per_image:
        check_table_path(args.per_image)
    _, stats = collect_stats(args.root, categories=args.categories, label_map=labels,
                             workers=args.workers, progress=show_progress(args))
    summary = summarise(stats.images)
    diffs = compare_published(summary, only_present=bool(args.categories)) if args.compare_published else []
    if args.format == "json":
        if args.compare_published:
            summary = {**summary, "differences_from_published": [
                {"category": d.category, "field": d.field, "tree": d.tree, "published": d.published}
                for d in diffs]}
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        sys.stdout.write(render(summary, args.format))
        if args.compare_published:
            if diffs:
                sys.stdout.write(f"\nDifferences from the published table ({len(diffs)}):\n")
                sys.stdout.writelines(f"  {d}\n" for d in diffs)
            else:
                sys.stdout.write("\nThe tree matches the published table.\n")
    if args.per_image:
        images_file = write_table(stats.images, args.per_image)
        regions_file = write_table(stats.regions, regions_path(args.per_image))
        print(f"wrote {images_file} ({len(stats.images)} images) and {regions_file} "
              f"({len(stats.regions)} regions)", file=sys.stderr)
    if args.plots:
        from ..plots import write_plots

        for path in write_plots(stats.images, stats.regions, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 1 if diffs else 0
