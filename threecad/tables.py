"""Writing the per-image and per-region tables as Parquet or CSV (chosen by extension)."""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path
from .errors import UsageError

__all__ = ["TABLE_SUFFIXES", "regions_path", "write_table"]

TABLE_SUFFIXES = (".parquet", ".csv")


def regions_path(images_path: str | Path) -> Path:
    """Where the per-region table goes beside ``images_path``: ``x.csv`` -> ``x.regions.csv``."""
    p = Path(images_path)
    return p.with_name(f"{p.stem}.regions{p.suffix}")


def check_table_path(path: str | Path) -> Path:
    """Raise :class:`UsageError` unless ``path`` ends in ``.parquet`` or ``.csv``."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"{p}: unknown table format {p.suffix!r}; use a .parquet or .csv file name")
    return p


def write_table(df: "object", path: str | Path) -> Path:
    """Write a DataFrame atomically; tuple columns become lists (Parquet) or ``;``-joined text (CSV)."""
    p = check_table_path(path)
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, tuple)).any():
            if p.suffix.lower() == ".csv":
                out[col] = out[col].map(lambda v: ";".join(map(str, v)) if isinstance(v, tuple) else v)
            else:
                out[col] = out[col].map(lambda v: list(v) if isinstance(v, tuple) else v)
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".csv":
            out.to_csv(tmp, index=False)
        else:
            out.to_parquet(tmp, index=False)
    return p
