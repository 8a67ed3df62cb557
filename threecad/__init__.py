"""threecad: dataset core, CLI and tooling for the 3CAD anomaly-detection benchmark.

Importing this package is cheap: it pulls in nothing beyond the standard library.
Heavy modules (pandas, OpenCV, numba, torch, fiftyone) are imported by the submodules
and commands that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load", "load_split"]


def load(root, *, categories=None, label_map=None):
    """The manifest of a 3CAD tree: a pandas ``DataFrame`` with one row per image.

    Columns (:data:`threecad.manifest.MANIFEST_COLUMNS`): ``image_id``
    (``<Category>/<split>/<folder>/<stem>``), ``category``, ``code``, ``split`` (train/test),
    ``label`` (good/defect), ``folder``, ``defect_type``, ``defect_types`` (tuple), ``n_types``,
    ``stem``, ``image_path``, ``mask_paths`` (tuple, every mask file of the image), ``mask_types``,
    ``height``, ``width``, ``channels``; sorted by ``image_id``.

    Parameters
    ----------
    root : path
        The folder holding the category folders.
    categories : sequence of str, optional
        Only these categories (codes, folder names or aliases).
    label_map : threecad.labels.LabelMap, optional
        Extra defect-name translations.

    Raises
    ------
    threecad.errors.UsageError
        ``root`` is missing or not a 3CAD tree, or a category is unknown.
    threecad.errors.DataError
        The tree has errors (all listed; warnings are logged).
    """
    from .manifest import load_manifest

    return load_manifest(root, categories=categories, label_map=label_map)


def load_split(path, split="train", **kwargs):
    """The manifest rows of one split of a split file (see :func:`threecad.splits.load_split`)."""
    from .splits import load_split as _load_split

    return _load_split(path, split, **kwargs)
