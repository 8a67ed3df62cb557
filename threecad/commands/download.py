"""``threecad download``: fetch the 3CAD archive (or DTD textures), verify and extract it."""

from __future__ import annotations

import sys

from ._common import show_progress


def _say(message: str) -> None:
    print(f"threecad download: {message}", file=sys.stderr)


def _warn_if_not_3cad(outcome) -> None:
    """Warn when a 3CAD install holds none of the category folders (a wrong archive?)."""
    from ..categories import CATEGORIES

    if outcome.resource.name == "dtd":
        return
    present = {p.name for p in outcome.dest.iterdir() if p.is_dir()}
    if not present & {c.folder for c in CATEGORIES}:
        _say(f"warning: {outcome.dest} holds none of the 8 category folders; check it with "
             f"'threecad validate {outcome.dest}'")


def run(args) -> int:
    """Run the command; return the exit code."""
    from ..download import fetch_dataset, resource_for
    from ..download.extract import human_size

    resource = resource_for(args.release, dtd=args.dtd)
    outcome = fetch_dataset(resource, args.dest, url=args.url, archive=args.archive, sha256=args.sha256,
                            retries=args.retries, timeout=args.timeout, force=args.force,
                            stall_timeout=getattr(args, "stall_timeout", None),
                            progress=show_progress(args))
    rec = outcome.record
    if outcome.skipped:
        _say(f"{outcome.dest} already holds {resource.name} (sha256 {rec.sha256}, installed {rec.time}); "
             f"nothing to do (use --force to download and extract again)")
        return 0
    _say(f"installed {resource.name} into {outcome.dest} from {rec.source_kind} {rec.source} "
         f"({rec.filename}, {human_size(rec.size)})")
    if outcome.pinned:
        _say(f"sha256 verified: {rec.sha256}")
    else:
        _say(f"sha256 {rec.sha256} (no digest was pinned, so it was not verified; to pin it next time, "
             f"pass --sha256 {rec.sha256})")
    _warn_if_not_3cad(outcome)
    return 0
