"""PNG charts of a tree's defects: region areas, regions per image, defect types.

One small panel per category (in the paper's order), shared axes where comparing
categories makes sense, and the size-class limits drawn on the area chart.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .categories import CATEGORIES
from .regions import MEDIUM_MAX_AREA, SMALL_MAX_AREA

__all__ = ["write_plots", "PLOT_FILES", "panels", "save_figure"]

PLOT_FILES = ("region_areas.png", "regions_per_image.png", "defect_types.png")


def panels(n: int, *, width: float = 4.2, height: float = 3.6):
    """A figure with ``n`` panels, at most 4 a row (each ``width`` x ``height`` inches); returns
    ``(figure, axes)``."""
    import matplotlib.pyplot as plt

    cols = min(4, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig, path: Path) -> None:
    """Write a figure as PNG atomically (:func:`threecad.atomic.atomic_path`) and close it."""
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _present(images) -> list:
    folders = set(images["category"])
    return [c for c in CATEGORIES if c.folder in folders]


def _region_areas(regions, cats, path: Path) -> None:
    fig, axes = panels(len(cats))
    areas_all = regions["area"].to_numpy() if len(regions) else np.array([1])
    lo = max(1, int(areas_all.min()))
    hi = max(lo * 10, int(areas_all.max()))
    bins = np.logspace(math.log10(lo), math.log10(hi) + 0.01, 30)
    for ax, cat in zip(axes, cats):
        areas = regions.loc[regions["category"] == cat.folder, "area"].to_numpy()
        if areas.size:
            ax.hist(areas, bins=bins, color="#3b6ea8", edgecolor="white", linewidth=0.5)
        else:
            ax.text(0.5, 0.5, "no regions", ha="center", va="center", transform=ax.transAxes)
        ax.set_xscale("log")
        for limit, name in ((SMALL_MAX_AREA, "32²"), (MEDIUM_MAX_AREA, "96²")):
            ax.axvline(limit, color="#c0392b", linestyle="--", linewidth=1)
            ax.text(limit, 0.97, f" {name}", color="#c0392b", fontsize=8, va="top",
                    transform=ax.get_xaxis_transform())
        ax.set_title(f"{cat.code} — {cat.folder}\n{areas.size} regions", fontsize=10)
        ax.set_xlabel("region area (px, log scale)")
        ax.set_ylabel("regions")
        _integer_ticks(ax.yaxis)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Region area per category (8-connected regions at native size; "
                 "dashed: small/medium/large limits)", fontsize=12)
    save_figure(fig, path)


def _regions_per_image(images, cats, path: Path) -> None:
    fig, axes = panels(len(cats))
    defect = images[(images["label"] == "defect") & (images["n_regions"] >= 0)]
    top = int(defect["n_regions"].max()) if len(defect) else 1
    for ax, cat in zip(axes, cats):
        counts = defect.loc[defect["category"] == cat.folder, "n_regions"].to_numpy()
        values = np.bincount(counts, minlength=top + 1) if counts.size else np.zeros(top + 1, int)
        ax.bar(np.arange(1, top + 1), values[1:], color="#2e8b57", width=0.8)
        ax.set_xlim(0.5, top + 0.5)
        _integer_ticks(ax.xaxis)
        _integer_ticks(ax.yaxis)
        mean = f", mean {counts.mean():.1f}" if counts.size else ""
        ax.set_title(f"{cat.code} — {counts.size} defective images{mean}", fontsize=10)
        ax.set_xlabel("regions per defective image")
        ax.set_ylabel("images")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Anomalous regions per defective test image", fontsize=12)
    save_figure(fig, path)


def _defect_types(images, cats, path: Path) -> None:
    import matplotlib.pyplot as plt

    defect = images[images["label"] == "defect"]
    per_cat = []
    for cat in cats:
        counts: dict[str, int] = {}
        for types in defect.loc[defect["category"] == cat.folder, "defect_types"]:
            for t in types:
                counts[t] = counts.get(t, 0) + 1
        per_cat.append(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    tallest = max((len(c) for c in per_cat), default=1)
    cols = min(4, max(1, len(cats)))
    rows = math.ceil(len(cats) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 0.28 * max(tallest, 4) * rows + 1.2 * rows),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(cats):]:
        ax.set_visible(False)
    for ax, cat, counts in zip(axes.flat, cats, per_cat):
        names = [n for n, _ in counts][::-1]
        values = [v for _, v in counts][::-1]
        ax.barh(names, values, color="#8e44ad")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v}", va="center", fontsize=8)
        ax.set_title(f"{cat.code} — {len(counts)} defect types", fontsize=10)
        ax.set_xlabel("defective test images")
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlim(0, max(values, default=1) * 1.2)
        _integer_ticks(ax.xaxis)
    fig.suptitle("Defective test images per defect type (an image with several types counts "
                 "under each)", fontsize=12)
    save_figure(fig, path)


def write_plots(images: "object", regions: "object", out_dir: str | Path) -> list[Path]:
    """Write the charts of :data:`PLOT_FILES` into ``out_dir`` and return their paths.

    Parameters
    ----------
    images : pandas.DataFrame
        Per-image table (manifest plus ``n_regions``).
    regions : pandas.DataFrame
        Per-region table (``category``, ``area``).
    out_dir : path
        Created when missing.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cats = _present(images)
    paths = [out / name for name in PLOT_FILES]
    _region_areas(regions, cats, paths[0])
    _regions_per_image(images, cats, paths[1])
    _defect_types(images, cats, paths[2])
    return paths
