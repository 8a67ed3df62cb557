"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys

from ..errors import UsageError
from ..labels import LabelMap, LabelMapError

__all__ = ["label_map_from_args", "show_progress", "data_root_from_args", "categories_from_args"]


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


def data_root_from_args(args):
    """``--data-root``, else ``$THREECAD_ROOT``, else the download folder; :class:`UsageError`
    when it does not exist."""
    from pathlib import Path

    from ..paths import DATA_ROOT_ENV, default_data_root

    root = Path(args.data_root).expanduser() if args.data_root else default_data_root()
    if not root.is_dir():
        raise UsageError(f"no dataset at {root}: pass --data-root ROOT or set ${DATA_ROOT_ENV} "
                         f"(or fetch it with 'threecad download'; 'threecad sample DIR' writes a small one)")
    return root


def categories_from_args(args) -> list[str] | None:
    """``--categories`` as a list (``ACC,AI`` and ``ACC AI`` both accepted), or None for all."""
    return [c for part in (getattr(args, "categories", None) or []) for c in part.split(",") if c] or None
