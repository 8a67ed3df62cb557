"""Writing the per-image and per-region tables as Parquet or CSV (chosen by extension).

The two tables of ``threecad stats --per-image FILE`` are one set: :func:`write_table_pair`
publishes the region table first and the image table last, after removing the old image
table. The image table is the set's marker: whenever ``FILE`` exists, the region table
beside it was written by the same run. A run killed in between leaves no ``FILE`` (and, at
worst, a new region table without its image table, which the next run replaces); its
temporary ``.FILE.*.part`` files are swept by the next run.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path, sweep_stale
from .errors import UsageError

__all__ = ["TABLE_SUFFIXES", "regions_path", "check_table_path", "write_table", "write_table_pair"]

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


def _plain(df: "object", p: Path) -> "object":
    """``df`` with tuple columns as lists (Parquet) or ``;``-joined text (CSV)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, tuple)).any():
            if p.suffix.lower() == ".csv":
                out[col] = out[col].map(lambda v: ";".join(map(str, v)) if isinstance(v, tuple) else v)
            else:
                out[col] = out[col].map(lambda v: list(v) if isinstance(v, tuple) else v)
    return out


def _write(df: "object", p: Path, tmp: Path) -> None:
    out = _plain(df, p)
    if p.suffix.lower() == ".csv":
        out.to_csv(tmp, index=False)
    else:
        out.to_parquet(tmp, index=False)


def write_table(df: "object", path: str | Path) -> Path:
    """Write a DataFrame atomically; tuple columns become lists (Parquet) or ``;``-joined text (CSV)."""
    p = check_table_path(path)
    with atomic_path(p) as tmp:
        _write(df, p, tmp)
    return p


def write_table_pair(images: "object", regions: "object", path: str | Path) -> tuple[Path, Path]:
    """Write the image table at ``path`` and the region table beside it as one set.

    Both are written to temporary files first; then the old image table is removed, the
    region table published and the image table published last (see the module's note).

    Returns
    -------
    (Path, Path)
        The image table and the region table.
    """
    p = check_table_path(path)
    r = regions_path(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(p.parent, p.name)
    sweep_stale(p.parent, r.name)
    with atomic_path(p) as tmp_images:
        with atomic_path(r) as tmp_regions:
            _write(images, p, tmp_images)
            _write(regions, r, tmp_regions)
            p.unlink(missing_ok=True)  # from here on no image table pairs with an old region table
        # the region table is published here; the image table when this block ends
    return p, r
