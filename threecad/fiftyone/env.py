"""Importing fiftyone (only this feature does): with the project's settings, or a clear error."""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import UsageError

__all__ = ["import_fiftyone"]


def import_fiftyone() -> ModuleType:
    """``import fiftyone`` with tracking and database-version validation off.

    The database is the one in ``FIFTYONE_DATABASE_URI`` when set (``threecad view`` and the
    tests set it to a server they started, see :mod:`threecad.fiftyone.db`); otherwise
    FiftyOne manages its own, as it normally does.
    """
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    try:
        import fiftyone as fo
    except ImportError as exc:
        raise UsageError(f"FiftyOne is not installed ({exc}); install the extra: pip install -e '.[fiftyone]'") \
            from None
    return fo
