"""Where threecad keeps things: the dataset folder and the cache."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_data_root", "default_cache_dir", "DATA_ROOT_ENV"]

DATA_ROOT_ENV = "THREECAD_ROOT"


def default_data_root() -> Path:
    """``$THREECAD_ROOT``, else the folder ``threecad download`` writes to
    (``$XDG_DATA_HOME/threecad/3CAD``, by default ``~/.local/share/threecad/3CAD``)."""
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "threecad" / "3CAD"


def default_cache_dir() -> Path:
    """``$THREECAD_CACHE``, else ``$XDG_CACHE_HOME/threecad``, else ``~/.cache/threecad``."""
    if os.environ.get("THREECAD_CACHE"):
        return Path(os.environ["THREECAD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "threecad"
