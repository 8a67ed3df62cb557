"""threecad: dataset core, CLI and tooling for the 3CAD anomaly-detection benchmark.

Importing this package is cheap: it pulls in nothing beyond the standard library.
Heavy modules (pandas, OpenCV, numba, torch, fiftyone) are imported by the submodules
and commands that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_split"]


def load_split(path, split="train", **kwargs):
    """The manifest rows of one split of a split file (see :func:`threecad.splits.load_split`)."""
    from .splits import load_split as _load_split

    return _load_split(path, split, **kwargs)
