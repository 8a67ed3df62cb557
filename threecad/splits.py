"""Split files: the official train/test split, a validation split and k-shot subsets.

Per category, drawn from ``train/good`` only (a test image never enters a training or
validation list), deterministic for a seed:

* ``train`` / ``test``: the official split, as on disk;
* ``val``: ``val_fraction`` of ``train`` held out for model selection;
* ``fit``: ``train`` without ``val`` (what a model trains on when it validates);
* ``shot_K``: K images of ``fit``; nested (``shot_1`` is in ``shot_2`` ...).

A split file lists image keys (``image_id``) and carries the sha256 of the manifest it was
drawn from; :func:`load_split` refuses a tree whose manifest has changed since.
Formats: JSON (one object) or CSV (``split,category,image_id`` with ``#`` metadata lines).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .atomic import write_text_atomic
from .errors import DataError, UsageError

__all__ = ["SPLIT_FORMAT_VERSION", "manifest_sha256", "make_splits", "write_splits", "read_splits",
           "load_split"]

SPLIT_FORMAT_VERSION = 1


def manifest_sha256(manifest: Any) -> str:
    """sha256 over every image's key, label and defect types (sorted by key)."""
    h = hashlib.sha256()
    rows = sorted(zip(manifest["image_id"], manifest["label"], manifest["defect_types"]))
    for image_id, label, types in rows:
        h.update(f"{image_id}\t{label}\t{';'.join(types)}\n".encode())
    return h.hexdigest()


def make_splits(manifest: Any, *, val_fraction: float = 0.1, shots: Sequence[int] = (1, 2, 4, 8),
                seed: int = 0, root: str | Path | None = None) -> dict[str, Any]:
    """Draw the splits of every category of ``manifest``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        From :func:`threecad.manifest.scan`.
    val_fraction : float
        Share of each category's ``train`` held out as ``val`` (rounded; at least one image
        when the fraction is positive and the category has two or more training images).
    shots : sequence of int
        k-shot sizes; a size larger than a category's ``fit`` list is skipped (and listed
        under ``skipped_shots``).
    seed : int
        Random seed; the draw of a category does not depend on the other categories.

    Returns
    -------
    dict
        The split-file object (see module doc).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    shots = sorted(set(int(k) for k in shots))
    if any(k <= 0 for k in shots):
        raise UsageError(f"shot sizes must be positive, got {shots}")
    cats: dict[str, Any] = {}
    for category in dict.fromkeys(manifest["category"]):
        sub = manifest[manifest["category"] == category]
        train = sorted(sub.loc[sub["split"] == "train", "image_id"])
        test = sorted(sub.loc[sub["split"] == "test", "image_id"])
        rng = np.random.default_rng([seed, zlib.crc32(category.encode())])
        order = [train[i] for i in rng.permutation(len(train))]
        n_val = 0
        if val_fraction > 0 and len(train) >= 2:
            n_val = min(len(train) - 1, max(1, int(round(val_fraction * len(train)))))
        val, fit = order[:n_val], order[n_val:]
        entry: dict[str, Any] = {"train": train, "test": test, "val": sorted(val), "fit": sorted(fit)}
        skipped = []
        for k in shots:
            if k <= len(fit):
                entry[f"shot_{k}"] = sorted(fit[:k])
            else:
                skipped.append(k)
        entry["skipped_shots"] = skipped
        cats[category] = entry
    return {
        "format_version": SPLIT_FORMAT_VERSION,
        "threecad_version": __version__,
        "root": str(root) if root is not None else None,
        "manifest_sha256": manifest_sha256(manifest),
        "seed": seed,
        "val_fraction": val_fraction,
        "shots": shots,
        "categories": cats,
    }


_META_KEYS = ("format_version", "threecad_version", "root", "manifest_sha256", "seed", "val_fraction", "shots")


def write_splits(splits: dict[str, Any], path: str | Path) -> Path:
    """Write the split object as ``.json`` or ``.csv`` (by extension), atomically."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        write_text_atomic(p, json.dumps(splits, indent=2) + "\n")
    elif p.suffix.lower() == ".csv":
        buf = io.StringIO()
        for key in _META_KEYS:
            buf.write(f"# {key}={json.dumps(splits[key])}\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["split", "category", "image_id"])
        for category, entry in splits["categories"].items():
            for name, ids in entry.items():
                if name == "skipped_shots":
                    continue
                for image_id in ids:
                    w.writerow([name, category, image_id])
        write_text_atomic(p, buf.getvalue())
    else:
        raise UsageError(f"{p}: unknown split file format {p.suffix!r}; use .json or .csv")
    return p


def read_splits(path: str | Path) -> dict[str, Any]:
    """Read a split file written by :func:`write_splits`; errors name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{p}: cannot read split file ({exc.strerror or exc})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
            if not isinstance(data, dict) or "categories" not in data:
                raise ValueError("not a threecad split file (no 'categories')")
            return data
        meta: dict[str, Any] = {}
        lines = text.splitlines()
        while lines and lines[0].startswith("#"):
            key, _, value = lines.pop(0)[1:].strip().partition("=")
            meta[key] = json.loads(value)
        reader = csv.reader(lines)
        if next(reader, None) != ["split", "category", "image_id"]:
            raise ValueError("expected the header 'split,category,image_id'")
        cats: dict[str, dict[str, list[str]]] = {}
        for row in reader:
            if len(row) != 3:
                raise ValueError(f"bad row {row!r}")
            cats.setdefault(row[1], {}).setdefault(row[0], []).append(row[2])
        return {**meta, "categories": cats}
    except (ValueError, json.JSONDecodeError) as exc:
        raise UsageError(f"{p}: {exc}") from None


def load_split(path: str | Path, split: str = "train", *, root: str | Path | None = None,
               categories: Sequence[str] | None = None) -> Any:
    """The manifest rows of one split (no PyTorch needed).

    Parameters
    ----------
    path : path
        A split file (:func:`write_splits`).
    split : str
        ``train``, ``test``, ``val``, ``fit`` or ``shot_K``.
    root : path, optional
        The tree to read (default: the root recorded in the file).
    categories : sequence of str, optional
        Only these categories.

    Returns
    -------
    pandas.DataFrame
        Manifest rows (see :data:`threecad.manifest.MANIFEST_COLUMNS`), in split-file order.

    Raises
    ------
    DataError
        The tree's manifest differs from the one the splits were drawn from, or a listed
        image is missing.
    """
    from .categories import get_category
    from .manifest import load_manifest

    data = read_splits(path)
    root = root if root is not None else data.get("root")
    if not root:
        raise UsageError(f"{path}: the split file records no root; pass root=")
    manifest = load_manifest(root)
    digest = manifest_sha256(manifest)
    if data.get("manifest_sha256") and digest != data["manifest_sha256"]:
        raise DataError(f"{root}: the tree differs from the one {path} was drawn from (manifest sha256 "
                        f"{digest[:16]}... vs {str(data['manifest_sha256'])[:16]}...); draw the splits again "
                        f"with 'threecad split'")
    wanted = {get_category(c).folder for c in categories} if categories else None
    ids: list[str] = []
    known = set()
    for category, entry in data["categories"].items():
        if wanted is not None and category not in wanted:
            continue
        known.update(entry)
        ids.extend(entry.get(split, []))
    if split not in known:
        names = sorted(k for k in known if k != "skipped_shots")
        raise UsageError(f"{path} has no split {split!r}; it has {', '.join(names)}")
    indexed = manifest.set_index("image_id", drop=False)
    missing = [i for i in ids if i not in indexed.index]
    if missing:
        raise DataError(f"{root}: {len(missing)} images of split {split!r} are missing, e.g. {missing[0]}")
    return indexed.loc[ids].reset_index(drop=True)
