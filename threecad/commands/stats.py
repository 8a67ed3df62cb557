"""``threecad stats ROOT``: the paper's dataset table for any tree."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from pathlib import Path

from ..errors import DataError, Problem
from ..image_stats import compute_image_stats
from ..manifest import raise_on_errors, scan
from ..stats import compare_published, render, summarise
from ..tables import check_table_path, write_table_pair
from ._common import label_map_from_args, show_progress

log = logging.getLogger(__name__)


def _not_regular(manifest) -> tuple[list[Problem], set]:
    """Problems for image and mask paths that are not regular files (FIFOs, devices, folders,
    dangling or looping links), and the ids of the images concerned. Only ``stat`` is used:
    nothing is opened, so a FIFO cannot block the command."""
    problems: list[Problem] = []
    bad: set = set()
    for image_id, image_path, mask_paths in zip(manifest["image_id"], manifest["image_path"],
                                               manifest["mask_paths"]):
        for path in (image_path, *mask_paths):
            try:
                ok = stat.S_ISREG(os.stat(path).st_mode)
                why = "not a regular file (a FIFO, device or folder)"
            except OSError as exc:
                ok, why = False, f"cannot be read ({exc.strerror or exc})"
            if not ok:
                problems.append(Problem("not_a_regular_file", Path(path), why))
                bad.add(image_id)
    return problems, bad


def collect_stats(root, *, categories=None, label_map=None, workers=None, progress=False):
    """Scan and measure a tree; raise ``DataError`` listing every error found on the way.

    Paths that are not regular files are reported as ``not_a_regular_file`` with the other
    problems (and never opened); an operating-system error while scanning (a symbolic-link
    loop, a folder without permission) is a ``DataError`` naming the path.
    """
    try:
        result = scan(root, categories=categories, label_map=label_map)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else root
        raise DataError(f"cannot scan {root}: {where}: {exc.strerror or exc}") from None
    irregular, bad = _not_regular(result.manifest)
    manifest = result.manifest[~result.manifest["image_id"].isin(bad)] if bad else result.manifest
    stats = compute_image_stats(manifest, workers=workers, progress=progress)
    raise_on_errors([*result.problems, *irregular, *stats.problems],
                    f"cannot compute statistics: {result.root} has problems")
    return result, stats


def run(args) -> int:
    """Run the command; return the exit code."""
    labels = label_map_from_args(args)
    if args.per_image:
        check_table_path(args.per_image)
    _, stats = collect_stats(args.root, categories=args.categories, label_map=labels,
                             workers=getattr(args, "threads", None), progress=show_progress(args))
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
        images_file, regions_file = write_table_pair(stats.images, stats.regions, args.per_image)
        print(f"wrote {images_file} ({len(stats.images)} images) and {regions_file} "
              f"({len(stats.regions)} regions)", file=sys.stderr)
    if args.plots:
        from ..plots import write_plots

        for path in write_plots(stats.images, stats.regions, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 1 if diffs else 0
