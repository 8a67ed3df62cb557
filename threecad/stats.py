"""The dataset table of the 3CAD paper, computed for any tree, and its comparison.

:func:`summarise` turns the per-image table (:func:`threecad.image_stats.compute_image_stats`)
into the paper's table; :func:`render` prints it as text, JSON, CSV or Markdown;
:func:`compare_published` lists where a tree differs from the published figures.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from .categories import CATEGORIES, PUBLISHED_TOTAL, get_category

__all__ = ["FORMATS", "summarise", "render", "Difference", "compare_published", "RANGE_FIELDS",
           "COUNT_FIELDS"]

FORMATS = ("table", "json", "csv", "markdown")
COUNT_FIELDS = ("train", "test", "test_good", "test_defect", "defect_types")
RANGE_FIELDS = ("height", "width", "regions_per_defect_image", "types_per_defect_image")


def _range(series) -> list[int] | None:
    values = series[series >= 0]
    if values.empty:
        return None
    return [int(values.min()), int(values.max())]


def _row(df) -> dict[str, object]:
    train = df[df["split"] == "train"]
    test = df[df["split"] == "test"]
    defect = test[test["label"] == "defect"]
    types = {t for ts in defect["defect_types"] for t in ts}
    return {
        "train": int(len(train)),
        "test": int(len(test)),
        "test_good": int((test["label"] == "good").sum()),
        "test_defect": int(len(defect)),
        "defect_types": len(types),
        "height": _range(df["height"]),
        "width": _range(df["width"]),
        "regions_per_defect_image": _range(defect["n_regions"]) if "n_regions" in defect else None,
        "types_per_defect_image": _range(defect["n_types"]),
    }


def summarise(images: "object") -> dict[str, object]:
    """The paper's dataset table for a per-image table.

    Parameters
    ----------
    images : pandas.DataFrame
        The manifest with the statistics columns (``n_regions`` ...).

    Returns
    -------
    dict
        ``{"categories": {folder: {"code", "train", "test", "test_good", "test_defect",
        "defect_types", "height": [min, max], "width": [min, max],
        "regions_per_defect_image": [min, max], "types_per_defect_image": [min, max]}},
        "total": {...}}``; a range is ``None`` when there is nothing to measure. In the
        total, ``defect_types`` adds up the categories' counts, as the paper does.
    """
    cats: dict[str, dict[str, object]] = {}
    for cat in CATEGORIES:
        sub = images[images["category"] == cat.folder]
        if sub.empty:
            continue
        cats[cat.folder] = {"code": cat.code, **_row(sub)}
    total = _row(images) if len(images) else {k: 0 for k in COUNT_FIELDS}
    total["defect_types"] = sum(int(c["defect_types"]) for c in cats.values())
    return {"categories": cats, "total": total}


def _fmt_range(r) -> str:
    if r is None:
        return "-"
    lo, hi = r
    return str(lo) if lo == hi else f"{lo}-{hi}"


_HEADERS = ("code", "folder", "train", "test", "good", "defect", "types", "height", "width",
            "regions/img", "types/img")


def _table_rows(summary: dict) -> list[list[str]]:
    rows = []
    for folder, c in summary["categories"].items():
        rows.append([c["code"], folder, *(str(c[k]) for k in COUNT_FIELDS),
                     *(_fmt_range(c[k]) for k in RANGE_FIELDS)])
    t = summary["total"]
    rows.append(["all", "", *(str(t.get(k, 0)) for k in COUNT_FIELDS),
                 *(_fmt_range(t.get(k)) for k in RANGE_FIELDS)])
    return rows


def render(summary: dict, fmt: str = "table") -> str:
    """The table as text (``table``), ``json``, ``csv`` or ``markdown``."""
    if fmt == "json":
        return json.dumps(summary, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["code", "folder", *COUNT_FIELDS,
                         *(f"{k}_{end}" for k in RANGE_FIELDS for end in ("min", "max"))])
        entries = [(c["code"], f, c) for f, c in summary["categories"].items()]
        entries.append(("all", "", summary["total"]))
        for code, folder, c in entries:
            ranges = []
            for k in RANGE_FIELDS:
                ranges.extend(c.get(k) or ["", ""])
            writer.writerow([code, folder, *(c.get(k, 0) for k in COUNT_FIELDS), *ranges])
        return buf.getvalue()
    rows = _table_rows(summary)
    if fmt == "markdown":
        lines = ["| " + " | ".join(_HEADERS) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(_HEADERS))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]

    def line(cells) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(_HEADERS), line(["-" * w for w in widths])]
    out += [line(r) for r in rows[:-1]]
    out += [line(["-" * w for w in widths]), line(rows[-1])]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Difference:
    """One field where the tree differs from the published table."""

    category: str  # code, or "all"
    field: str
    tree: object
    published: object

    def __str__(self) -> str:
        if self.field == "missing":
            return f"{self.category}: category missing from the tree (published: {self.published} images)"
        return f"{self.category} {self.field}: tree {self.tree}, published {self.published}"


def compare_published(summary: dict, *, only_present: bool = False) -> list[Difference]:
    """Where the table differs from the paper's, per category and field.

    Counts must match exactly; ranges must equal the published ranges. Missing categories
    are reported (unless ``only_present``), and so is the total row when all eight
    categories are present.
    """
    diffs: list[Difference] = []
    present = summary["categories"]
    for cat in CATEGORIES:
        row = present.get(cat.folder)
        if row is None:
            if not only_present:
                diffs.append(Difference(cat.code, "missing", None, cat.train + cat.test))
            continue
        published = cat.published_row()
        for k in (*COUNT_FIELDS, *RANGE_FIELDS):
            if row[k] != published[k]:
                diffs.append(Difference(cat.code, k, row[k], published[k]))
    if len(present) == len(CATEGORIES):
        for k, v in PUBLISHED_TOTAL.items():
            if summary["total"].get(k) != v:
                diffs.append(Difference("all", k, summary["total"].get(k), v))
    return diffs


def category_order(folders) -> list[str]:
    """Folder names in the paper's category order."""
    return sorted(folders, key=lambda f: [c.folder for c in CATEGORIES].index(get_category(f).folder))
