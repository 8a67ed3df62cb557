"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys

from ..errors import UsageError
from ..labels import LabelMap, LabelMapError

__all__ = ["label_map_from_args", "show_progress", "resolve_data_root"]


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


def resolve_data_root(given: str | None):
    """The data root from ``--data-root``, else the default; :class:`UsageError` when absent."""
    from pathlib import Path

    from ..paths import DATA_ROOT_ENV, default_data_root

    root = Path(given).expanduser() if given else default_data_root()
    if not root.is_dir():
        raise UsageError(f"no dataset at {root}: pass --data-root ROOT or set ${DATA_ROOT_ENV} "
                         f"(or fetch it with 'threecad download')")
    return root
