"""``threecad split ROOT``: write split files."""

from __future__ import annotations

import sys

from ..errors import UsageError
from ..manifest import raise_on_errors, scan
from ..splits import make_splits, write_splits
from ._common import label_map_from_args


def _shots(text) -> list[int]:
    """``--shots`` given as text (a hand-made namespace; the parser gives a list)."""
    try:
        return [int(k) for k in str(text).split(",") if k.strip()] if text else []
    except ValueError:
        raise UsageError(f"--shots expects sizes like 1,2,4,8, got {text!r}") from None


def run(args) -> int:
    """Run the command; return the exit code."""
    shots = args.shots if isinstance(args.shots, list) else _shots(args.shots)
    if not str(args.out).lower().endswith((".json", ".csv")):
        raise UsageError(f"{args.out}: use a .json or .csv file name")
    result = scan(args.root, categories=args.categories, label_map=label_map_from_args(args))
    raise_on_errors(result.problems, f"{result.root} has problems")
    splits = make_splits(result.manifest, val_fraction=args.val_fraction, shots=shots, seed=args.seed,
                         root=result.root)
    path = write_splits(splits, args.out)
    for category, entry in splits["categories"].items():
        sizes = ", ".join(f"{k} {len(v)}" for k, v in entry.items() if k != "skipped_shots")
        skipped = f" (skipped shots {entry['skipped_shots']}: too few training images)" \
            if entry["skipped_shots"] else ""
        print(f"{category}: {sizes}{skipped}", file=sys.stderr)
    print(f"wrote {path} (manifest sha256 {splits['manifest_sha256'][:16]}...)", file=sys.stderr)
    return 0
