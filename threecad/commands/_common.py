"""Helpers shared by the CLI commands."""

from __future__ import annotations

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
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}); save the label map as UTF-8") from None


def show_progress(args) -> bool:
    """Report progress unless ``--no-progress``: bars on a terminal, periodic log lines otherwise.

    The choice between bars and lines is made by :func:`threecad.progress.progress` for each
    phase, so library functions only receive this flag.
    """
    return not getattr(args, "no_progress", False)


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
    """``--categories`` as a list, or None for all.

    The parser already gives a list of folder names (``ACC,AI`` and ``ACC AI`` both
    accepted, see :func:`threecad.cli_options.add_categories`); plain strings with commas
    (a hand-made namespace) are split the same way.
    """
    return [c for part in (getattr(args, "categories", None) or []) for c in part.split(",") if c] or None
