"""Curves to look at: ROC, precision-recall and PRO curves of a scored category, and their plots.

The curves are the exact ones of the scoring engine (:mod:`eval.curves`, from the counts a
:class:`eval.evaluate.CategoryEvaluation` holds after pass 2), so the area under a drawn
ROC curve is the reported P-AUROC and the area under a drawn PRO curve (up to the FPR
limit, divided by it) is the pooled MVTec AUPRO. For drawing they are thinned to at most
``max_points`` vertices by :func:`downsample`, which keeps the area under the polyline
within ``tol`` (1e-4) of the exact one; a curve that cannot be thinned that far within the
tolerance (a fine staircase) keeps more points.

Curves per category (:class:`CategoryCurves`):

``roc``
    Pixel ROC (FPR, TPR); its area is P-AUROC.
``pr``
    Pixel precision-recall (recall, precision), starting at (0, 1) as scikit-learn's; the
    legend shows P-AP (step-wise, so not the area under the drawn polyline).
``pro``
    PRO curve (FPR, PRO) up to the protocol's FPR limit (0.3); area / limit = the pooled MVTec
    AUPRO (``aupro`` of the standard protocol, ``aupro_mvtec`` of the paper protocol, whose
    ``aupro`` is the authors' per-image PRO and has no single curve).
``image_roc``
    Image ROC (FPR, TPR) from the image scores and labels; its area is I-AUROC.

:func:`write_curve_plots` writes one PNG per curve kind with every category
(``threecad eval --plots DIR``); :func:`method_curve_figures` draws one panel per category
and one line per method (the leaderboard page).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .curves import (ThresholdCounts, UndefinedMetricWarning, aupro_from, average_precision_from, pr_curve_from,
                     pro_curve_from, roc_auc_from, roc_curve_from)
from .engine import PositiveIndex, order_keys
from .evaluate import CategoryEvaluation, ImageObserver

__all__ = ["Curve", "CategoryCurves", "CURVE_KINDS", "CURVE_FILES", "downsample", "trapezoid_area",
           "category_curves", "CurveCollector", "write_curve_plots", "method_curve_figures"]

MAX_POINTS = 1000
AREA_TOL = 1e-4

CURVE_KINDS = ("roc", "pr", "pro", "image_roc")
CURVE_FILES = {kind: f"{kind}_curves.png" for kind in CURVE_KINDS}
_AXES = {  # kind -> (title, x label, y label, metric shown in the legend)
    "roc": ("Pixel ROC", "false positive rate (normal pixels)", "true positive rate (anomalous pixels)", "P-AUROC"),
    "pr": ("Pixel precision-recall", "recall", "precision", "P-AP"),
    "pro": ("PRO curve", "false positive rate (normal pixels)", "per-region overlap (PRO)", "pooled AUPRO"),
    "image_roc": ("Image ROC", "false positive rate (good images)", "true positive rate (defective images)",
                  "I-AUROC"),
}


@dataclass(frozen=True)
class Curve:
    """One curve for drawing.

    Attributes
    ----------
    x, y : ndarray of shape (m,)
        The vertices drawn (``m <= max_points`` unless the area needs more).
    metric : float
        The exact metric of the curve (AUROC, AP or AUPRO; NaN when undefined).
    n_exact : int
        Vertices of the exact curve before thinning.
    """

    x: np.ndarray
    y: np.ndarray
    metric: float
    n_exact: int


@dataclass(frozen=True)
class CategoryCurves:
    """The curves of one scored category (``None`` where the curve is undefined)."""

    category: str
    code: str
    roc: Curve | None
    pr: Curve | None
    pro: Curve | None
    image_roc: Curve | None
    fpr_limit: float

    def get(self, kind: str) -> Curve | None:
        """The curve of ``kind`` (one of :data:`CURVE_KINDS`)."""
        if kind not in CURVE_KINDS:
            raise ValueError(f"unknown curve kind {kind!r} (one of {', '.join(CURVE_KINDS)})")
        return getattr(self, kind)


def trapezoid_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the polyline through ``(x, y)`` (trapezoids; ``x`` non-decreasing)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0) if x.size > 1 else 0.0


def _drop_collinear(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated vertices and interior vertices on a straight horizontal/vertical run
    (the area does not change)."""
    keep = np.ones(x.size, bool)
    same = (np.diff(x) == 0) & (np.diff(y) == 0)
    keep[1:][same] = False
    x, y = x[keep], y[keep]
    if x.size < 3:
        return x, y
    dx, dy = np.diff(x), np.diff(y)
    straight = ((dx[:-1] == 0) & (dx[1:] == 0)) | ((dy[:-1] == 0) & (dy[1:] == 0))
    keep = np.ones(x.size, bool)
    keep[1:-1] = ~straight
    return x[keep], y[keep]


def downsample(x: np.ndarray, y: np.ndarray, *, max_points: int = MAX_POINTS,
               tol: float = AREA_TOL) -> tuple[np.ndarray, np.ndarray]:
    """A curve thinned for drawing, keeping its area.

    Vertices are taken at even steps of the curve's length (|dx| + |dy|), always with
    both ends; if the area under the thinned polyline differs from the exact one by more
    than ``tol``, more points are taken (doubling), up to every vertex.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
        Curve vertices in drawing order, ``x`` non-decreasing.
    max_points : int
        Target number of vertices (at least 2).
    tol : float
        Largest change of :func:`trapezoid_area` allowed.

    Returns
    -------
    x, y : ndarray of shape (m,)
        A subset of the vertices (``m <= max_points`` unless the area needs more).
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got shapes {x.shape} and {y.shape}")
    exact = trapezoid_area(x, y)
    x, y = _drop_collinear(x, y)
    n = x.size
    if n <= max_points:
        return x, y
    length = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))])
    m = max_points
    while m < n:
        targets = np.linspace(0.0, length[-1], m)
        idx = np.unique(np.concatenate([[0, n - 1], np.searchsorted(length, targets, side="left")]))
        idx = idx[idx < n]
        if abs(trapezoid_area(x[idx], y[idx]) - exact) <= tol:
            return x[idx], y[idx]
        m *= 2
    return x, y


def _pixel_counts(ev: CategoryEvaluation) -> ThresholdCounts:
    """The threshold counts of a category's pixels, all groups summed (as the P-metrics use them)."""
    px = ev.pixels
    return px.total().threshold_counts(px.index.values)


def _crop(x: np.ndarray, y: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of a curve (``x`` non-decreasing) with ``x <= limit``, ending exactly at ``limit``
    (interpolated on the segment that crosses it, as the AUPRO integration does)."""
    j = int(np.searchsorted(x, limit, side="right"))
    if j >= x.size:
        return x, y
    x0, y0, x1, y1 = x[j - 1], y[j - 1], x[j], y[j]
    y_end = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
    return np.append(x[:j], limit), np.append(y[:j], y_end)


def _image_counts(ev: CategoryEvaluation) -> ThresholdCounts:
    """Image scores as threshold counts (positives = label 1)."""
    scores = np.array([r.score for r in ev.records], np.float64)
    labels = np.array([r.label for r in ev.records], np.int8)
    keys = order_keys(scores[labels == 1])
    index = PositiveIndex(keys)
    pos_count = np.bincount(index.positions(keys), minlength=index.size).astype(np.int64)
    neg = index.empty_counts()
    index.count(scores[labels != 1], neg)
    return ThresholdCounts.build(index.values, pos_count, neg)


def _thin(x, y, metric, max_points) -> Curve:
    tx, ty = downsample(x, y, max_points=max_points)
    return Curve(tx, ty, float(metric), int(np.asarray(x).size))


def category_curves(ev: CategoryEvaluation, *, fpr_limit: float = 0.3, max_points: int = MAX_POINTS
                    ) -> CategoryCurves:
    """The curves of one category after pass 2 (see the module doc).

    Parameters
    ----------
    ev : CategoryEvaluation
        A category scored by :func:`eval.evaluate.evaluate_category` (normal pixels counted).
    fpr_limit : float
        Where the PRO curve is cut (the protocol's limit).
    max_points : int
        Vertices per drawn curve (see :func:`downsample`).
    """
    tc = _pixel_counts(ev)
    roc = pr = pro = image_roc = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # an undefined curve is simply not drawn
        if tc.n_pos and tc.n_neg:
            c = roc_curve_from(tc)
            roc = _thin(c.fpr, c.tpr, roc_auc_from(tc), max_points)
            c = pr_curve_from(tc)
            pr = _thin(np.concatenate([[0.0], c.recall]), np.concatenate([[1.0], c.precision]),
                       average_precision_from(tc), max_points)
        if tc.n_regions and tc.n_neg:
            c = pro_curve_from(tc)
            x, y = _crop(c.fpr, c.pro, fpr_limit)
            pro = _thin(x, y, aupro_from(tc, fpr_limit=fpr_limit), max_points)
        itc = _image_counts(ev)
        if itc.n_pos and itc.n_neg:
            c = roc_curve_from(itc)
            image_roc = _thin(c.fpr, c.tpr, roc_auc_from(itc), max_points)
    return CategoryCurves(ev.category, ev.code, roc, pr, pro, image_roc, fpr_limit)


class CurveCollector(ImageObserver):
    """An observer for :func:`eval.evaluate.evaluate_submission` that keeps each category's
    curves when it is scored (``curves``, in scoring order)."""

    def __init__(self, *, fpr_limit: float = 0.3, max_points: int = MAX_POINTS) -> None:
        self.fpr_limit = fpr_limit
        self.max_points = max_points
        self.curves: list[CategoryCurves] = []

    def start(self, folder: str, n: int) -> None:  # noqa: D102 - nothing to do per image
        pass

    def pass1(self, i, truth, result) -> None:  # noqa: D102
        pass

    def end_pass1(self) -> None:  # noqa: D102
        pass

    def pass2(self, i, on_grid, flat_positive) -> None:  # noqa: D102
        pass

    def finish(self, evaluation: CategoryEvaluation) -> None:
        """Keep the curves of the category just scored."""
        self.curves.append(category_curves(evaluation, fpr_limit=self.fpr_limit, max_points=self.max_points))


# drawing ---------------------------------------------------------------------------------

_SHORT = {"roc": ("FPR", "TPR"), "pr": ("recall", "precision"), "pro": ("FPR", "PRO"),
          "image_roc": ("FPR (good images)", "TPR (defective images)")}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")


def _style_axes(ax, kind: str, fpr_limit: float) -> None:
    title, xlabel, ylabel, _ = _AXES[kind]
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_xlim(0, fpr_limit if kind == "pro" else 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    if kind in ("roc", "image_roc"):
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)


def _label(name: str, curve: Curve, kind: str) -> str:
    return f"{name} ({_AXES[kind][3]} {100 * curve.metric:.1f})"


def _draw(ax, curve: Curve | None, label: str, kind: str, color: str) -> None:
    if curve is not None:
        ax.plot(curve.x, curve.y, color=color, linewidth=1.4, label=_label(label, curve, kind))


def _one_figure(curves: Sequence[CategoryCurves], kind: str, method: str = ""):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    limit = curves[0].fpr_limit if curves else 0.3
    _style_axes(ax, kind, limit)
    drawn = 0
    for k, cc in enumerate(curves):
        curve = cc.get(kind)
        _draw(ax, curve, cc.code, kind, _COLORS[k % len(_COLORS)])
        drawn += curve is not None
    if drawn:
        ax.legend(fontsize=8, loc="lower right" if kind != "pr" else "lower left")
    else:
        ax.text(0.5, 0.5, "undefined for these categories", ha="center", va="center", transform=ax.transAxes)
    title = _AXES[kind][0] + (f" up to FPR {limit:g} (area / {limit:g} = pooled AUPRO)" if kind == "pro" else "")
    fig.suptitle(f"{title}{' — ' + method if method else ''}", fontsize=11)
    return fig


def write_curve_plots(curves: Sequence[CategoryCurves], out_dir: str | Path, *, method: str = "") -> list[Path]:
    """Write one PNG per curve kind (:data:`CURVE_FILES`), every category in it; return the paths.

    Parameters
    ----------
    curves : sequence of CategoryCurves
        One per category (e.g. :attr:`CurveCollector.curves`).
    out_dir : path
        Created when missing; each file is written atomically.
    method : str
        Shown in the titles.
    """
    import matplotlib

    from threecad.plots import save_figure

    matplotlib.use("Agg", force=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in CURVE_KINDS:
        path = out / CURVE_FILES[kind]
        save_figure(_one_figure(curves, kind, method), path)
        paths.append(path)
    return paths


def method_curve_figures(curves: Mapping[str, Mapping[str, CategoryCurves]], categories: Sequence[str],
                         *, fmt: str = "png") -> dict[str, bytes]:
    """One figure per curve kind: a panel per category, a line per method.

    Parameters
    ----------
    curves : mapping of str to mapping of str to CategoryCurves
        ``curves[method][category folder]``, methods in the order of the legend.
    categories : sequence of str
        Category folders, one panel each, in this order.
    fmt : {"png", "svg"}
        Image format of the returned bytes.

    Returns
    -------
    dict of str to bytes
        The encoded image per kind of :data:`CURVE_KINDS` (kinds with no curve left out).
    """
    import matplotlib

    from threecad.plots import panels

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from matplotlib.lines import Line2D

    out: dict[str, bytes] = {}
    methods = list(curves)
    colors = {m: _COLORS[k % len(_COLORS)] for k, m in enumerate(methods)}
    for kind in CURVE_KINDS:
        if not any(c.get(kind) is not None for m in methods for c in curves[m].values()):
            continue
        fig, axes = panels(len(categories), width=3.0, height=2.9)
        for ax, folder in zip(axes, categories):
            limit, code = 0.3, folder
            for m in methods:
                cc = curves[m].get(folder)
                if cc is None:
                    continue
                limit, code = cc.fpr_limit, cc.code
                curve = cc.get(kind)
                if curve is not None:
                    ax.plot(curve.x, curve.y, color=colors[m], linewidth=1.3)
            _style_axes(ax, kind, limit)
            ax.set_xlabel(_SHORT[kind][0], fontsize=8)
            ax.set_ylabel(_SHORT[kind][1], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(code, fontsize=10)
        handles = [Line2D([], [], color=colors[m], linewidth=2) for m in methods]
        fig.legend(handles, methods, loc="outside lower center", ncol=min(3, len(methods)), fontsize=8,
                   frameon=False)
        fig.suptitle(_AXES[kind][0] + (f" up to FPR {limit:g}" if kind == "pro" else "")
                     + " per category, one line per method", fontsize=11)
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=80, bbox_inches="tight")
        plt.close(fig)
        out[kind] = buf.getvalue()
    return out
