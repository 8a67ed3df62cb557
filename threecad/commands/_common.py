"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys

from ..errors import UsageError
from ..labels import LabelMap, LabelMapError

__all__ = ["label_map_from_args", "show_progress"]


def label_map_from_args(args) -> LabelMap:
    """The built-in label map, extended by ``--label-map FILE`` when given."""
    path = getattr(args, "label_map", None)
    if not path:
        return LabelMap()
    try:
        return LabelMap.from_file(path)
    except LabelMapError as exc:
        raise UsageError(str(exc)) from None


def show_progress(args) -> bool:
    """Progress bars only on a terminal, and not with ``--no-progress``."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()
