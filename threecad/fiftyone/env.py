"""Importing fiftyone (only this feature does): with the project's settings, or a clear error.

FiftyOne's noise is silenced (each setting only when the user has not set it): no usage
tracking, no welcome banner or remote-App instructions (its log level is ``WARNING``), no
progress bars of its own, no "Query Performance" pop-up in the App, none of the deprecation
warnings its dependencies raise at every import, and not the "Could not connect session,
trying again in 10 seconds" lines its session client prints while the App server starts
(:func:`silence_session_retries`).
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from contextlib import contextmanager
from types import ModuleType

from ..errors import UsageError

__all__ = ["import_fiftyone", "QUIET_ENV", "silence_session_retries"]

QUIET_ENV = {
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_DATABASE_VALIDATION": "false",
    "FIFTYONE_LOGGING_LEVEL": "WARNING",
    "FIFTYONE_SHOW_PROGRESS_BARS": "false",
    "FIFTYONE_APP_ENABLE_QUERY_PERFORMANCE": "false",   # its pop-up on every launch
}
_DEPRECATIONS = ("Passing a class to strawberry", "No uuidRepresentation", "pkg_resources is deprecated",
                 "datetime.datetime.utcnow", "Deprecated call to `pkg_resources")
_RETRY_LINE = "Could not connect session"


def import_fiftyone() -> ModuleType:
    """``import fiftyone`` with tracking and database-version validation off.

    The database is the one in ``FIFTYONE_DATABASE_URI`` when set (``threecad view`` and the
    tests set it to a server they started, see :mod:`threecad.fiftyone.db`); otherwise
    FiftyOne manages its own, as it normally does.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for text in _DEPRECATIONS:
        warnings.filterwarnings("ignore", message=f".*{text}", category=DeprecationWarning)
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


class _DropRetryLines(io.TextIOBase):
    """A text stream that passes everything to ``target`` except FiftyOne's session retry lines."""

    def __init__(self, target) -> None:
        self.target = target
        self._dropped = False

    def write(self, text: str) -> int:
        if _RETRY_LINE in text:
            self._dropped = True  # print() writes its end-of-line separately: drop that too
            return len(text)
        if self._dropped and text == "\n":
            self._dropped = False
            return len(text)
        self._dropped = False
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name):
        return getattr(self.target, name)


def silence_session_retries() -> None:
    """Drop the "Could not connect session" lines FiftyOne's session client prints to stdout
    (every 10 s while the App server starts); everything else is written as before."""
    if not isinstance(sys.stdout, _DropRetryLines):
        sys.stdout = _DropRetryLines(sys.stdout)
