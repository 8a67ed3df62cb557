"""threecad: dataset core, CLI and tooling for the 3CAD anomaly-detection benchmark.

Importing this package is cheap: it pulls in nothing beyond the standard library.
Heavy modules (pandas, OpenCV, numba, torch, fiftyone) are imported by the submodules
and commands that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
