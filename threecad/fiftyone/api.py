"""``to_fiftyone``: a 3CAD tree (and submissions) as a persistent FiftyOne dataset."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import UsageError

__all__ = ["to_fiftyone", "build_view_dataset", "ViewReport"]


@dataclass
class ViewReport:
    """What one build did: the dataset's name, the build report, one report per submission."""

    name: str
    build: Any
    predictions: list = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build_view_dataset(root: str | Path, *, preds: Sequence[str | Path] = (), categories: Sequence[str] | None = None,
                       split: str = "test", name: str | None = None, media_dir: str | Path | None = None,
                       label_map: Any = None, validation: Any = None, workers: int | None = None,
                       progress: bool = False) -> tuple[Any, ViewReport]:
    """Build or update the dataset; return ``(dataset, report)``. See :func:`to_fiftyone`."""
    from ..manifest import raise_on_errors, scan
    from .build import build_dataset, dataset_name, select_split
    from .env import import_fiftyone
    from .media import default_media_dir
    from .predictions import add_predictions
    from .views import configure_app, save_views

    start = time.perf_counter()
    if preds and split == "train":
        raise UsageError("--preds needs the test images: use --split test (the default) or all")
    result = scan(root, categories=categories, label_map=label_map)
    raise_on_errors(result.problems, f"{result.root} has problems")
    rows = select_split(result.manifest, split, result.root)
    preds = [Path(p) for p in preds]
    for p in preds:
        if not p.is_dir():
            raise UsageError(f"{p} is not a submission folder (<Category>/test/<folder>/<stem>.npy ...)")
    media = Path(media_dir) if media_dir is not None else default_media_dir()
    name = name or dataset_name(result.root, split)

    fo = import_fiftyone()
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        built_from = (dataset.info or {}).get("threecad_root")
        if built_from and built_from != str(result.root):
            raise UsageError(f"dataset {name!r} was built from {built_from}, not {result.root}; "
                             f"pass another --name")
    else:
        dataset = fo.Dataset(name, persistent=True)
        dataset.info = {"threecad_root": str(result.root), "split": split}
        dataset.save()
    build = build_dataset(fo, dataset, rows, categories=[c.folder for c in result.categories], media_dir=media,
                          validation=validation, workers=workers, progress=progress)
    report = ViewReport(name, build)
    prefixes: list[str] = []
    for p in preds:
        pr = add_predictions(fo, dataset, rows, p, media_dir=media, categories=categories, workers=workers,
                             progress=progress, taken=prefixes)
        prefixes.append(pr.prefix)
        report.predictions.append(pr)
        report.views += save_views(fo, dataset, pr.prefix)
    known = [p for p in (dataset.info or {}).get("predictions", {}) if p not in prefixes]
    configure_app(fo, dataset, prefixes + known)
    report.seconds = time.perf_counter() - start
    return dataset, report


def to_fiftyone(root: str | Path, *, preds: Sequence[str | Path] = (), categories: Sequence[str] | None = None,
                split: str = "test", name: str | None = None, media_dir: str | Path | None = None,
                label_map: Any = None, validation: Any = None, workers: int | None = None,
                progress: bool = False) -> Any:
    """A 3CAD tree as a persistent FiftyOne dataset (built, or updated without duplicates).

    Parameters
    ----------
    root : path
        The folder holding the category folders.
    preds : sequence of paths
        Submission folders (the ``threecad eval`` format) to add as heatmaps and per-sample results.
    categories : sequence of str, optional
        Only these categories (codes, folder names or aliases).
    split : {"test", "train", "all"}
        Which images.
    name : str, optional
        Dataset name (default: :func:`threecad.fiftyone.build.dataset_name` of root and split).
    media_dir : path, optional
        Where mask and heatmap files go (default ``<threecad cache>/fiftyone/media``).
    label_map : LabelMap, optional
        Defect-name table.
    validation : ValidationReport or dict, optional
        A report of :func:`threecad.validate.validate` (or its JSON): ``duplicate`` and
        ``leakage`` tags.
    workers : int, optional
        Threads reading masks and maps.

    Returns
    -------
    fiftyone.core.dataset.Dataset
        The database is the one FiftyOne is configured with (``FIFTYONE_DATABASE_URI``, or the
        one FiftyOne starts itself); see :mod:`threecad.fiftyone.db` for a private server.
    """
    dataset, _ = build_view_dataset(root, preds=preds, categories=categories, split=split, name=name,
                                    media_dir=media_dir, label_map=label_map, validation=validation,
                                    workers=workers, progress=progress)
    return dataset
