"""Importing fiftyone (only this feature does): with the project's settings, or a clear error."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
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
        with _stdlib_metadata_only():
            import eta  # noqa: F401  (reads its own metadata at import, see _stdlib_metadata_only)
        import fiftyone as fo
    except ImportError as exc:
        raise UsageError(f"FiftyOne is not installed ({exc}); install the extra: pip install -e '.[fiftyone]'") \
            from None
    return fo


@contextmanager
def _stdlib_metadata_only():
    """While ``eta`` is imported, let ``importlib.metadata.metadata`` answer as the standard library does.

    Importing the ``importlib_metadata`` backport (Dask does) replaces the standard library's
    distribution finder by its own, whose metadata objects raise ``KeyError`` for a missing
    field; ``eta`` (imported by fiftyone) reads the ``author`` field, which its own wheel does
    not set, so ``import fiftyone`` fails in such a process. Here the metadata object is
    wrapped in the standard library's (``None`` for a missing field) for that import only.
    """
    import importlib.metadata as std

    if not any(type(f).__module__.startswith("importlib_metadata") for f in sys.meta_path):
        yield
        return
    from importlib.metadata import _adapters

    original = std.metadata

    def tolerant(name: str):
        found = original(name)
        return found if isinstance(found, _adapters.Message) else _adapters.Message(found)

    std.metadata = tolerant
    try:
        yield
    finally:
        std.metadata = original
