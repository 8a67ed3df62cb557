"""The published 3CAD results (the paper's two tables), kept as data with their source.

``eval/data/published_3cad.csv`` holds every number of the 3CAD paper's results tables
(11 methods x 8 categories + mean, percent, authors' protocol). They are shown beside
re-scored methods for context and are never re-scored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

from .metric_names import Metric

__all__ = ["PublishedRow", "PUBLISHED_SOURCE", "published_rows"]

PUBLISHED_SOURCE = ("3CAD paper (AAAI 2025), results tables and README; authors' protocol, "
                    "checkpoints chosen by the authors")

# column of the data file -> the metric it holds (the paper reports the authors' per-image PRO as AUPRO)
_COLUMNS = {"pixel_auroc": Metric.PIXEL_AUROC, "pixel_ap": Metric.PIXEL_AP, "image_auroc": Metric.IMAGE_AUROC,
            "aupro_paper": Metric.AUPRO}


@dataclass(frozen=True)
class PublishedRow:
    """One published method: ``values[code or 'Mean'][metric]`` as fractions (NaN: not reported)."""

    method: str
    family: str
    values: dict[str, dict[str, float]]


def published_rows() -> list[PublishedRow]:
    """Every published method, in the paper's order; metrics as fractions in [0, 1]."""
    text = resources.files("threecad.eval").joinpath("data/published_3cad.csv").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    order: list[str] = []
    rows: dict[str, PublishedRow] = {}
    for rec in csv.DictReader(lines):
        name = rec["method"]
        if name not in rows:
            order.append(name)
            rows[name] = PublishedRow(name, rec["family"], {})
        vals = {}
        for col, metric in _COLUMNS.items():
            raw = rec[col].strip()
            vals[metric.value] = float("nan") if raw in ("", "-") else float(raw) / 100.0
        rows[name].values[rec["category"]] = vals
    return [rows[n] for n in order]
