"""Bootstrap confidence intervals and paired comparisons, from per-image statistics.

While a submission is scored (:class:`BootstrapObserver`, an
:class:`eval.evaluate.ImageObserver`), each test image of a category is reduced once to
histograms of its scores over a set of *levels*:

* ``pos_count[i, k]`` -- anomalous pixels of image ``i`` at level ``k``,
* ``pos_weight[i, k]`` -- their PRO weights (sum of ``1 / region area``),
* ``neg_on[i, k]`` and ``neg_below[i, k]`` -- normal pixels at level ``k`` and strictly
  between levels ``k - 1`` and ``k`` (:class:`eval.engine.NegativeCounts` layout),

plus its image score, label and region count. A resample of the test images is a vector
of integer multiplicities ``w`` (stratified: good and defective images are drawn
separately, each with replacement, so both keep their size); the statistics of the
resample are ``w @ pos_count`` etc., and the threshold counts of :mod:`eval.curves`
(the same :class:`eval.curves.ThresholdCounts` that every exact metric reads) turn them
into metrics. No map is read again: a resample costs a few matrix products over
``(n_images, n_levels)`` arrays.

Levels, and exactness
---------------------
When a category has at most ``max_levels`` distinct anomalous scores, the levels are those
scores and every resampled pixel metric is *exact* (the same value the scoring engine would
give for the resampled images). With more, ``max_levels`` levels are taken at evenly spaced
ranks of the distinct anomalous scores and every score is rounded down to its level
(scores below the lowest anomalous score, and above the highest, keep their own place):
the metrics are then those of the rounded scores (*binned*). The rounding only merges
scores into ties, so its effect on the point estimate is bounded and reported:

* P-AUROC: ``|error| <= 0.5 * sum_k pos_k * neg_k / (P * N)`` (pairs made into ties),
  computed from the counts (``auroc_bound``);
* every metric: the binned value of the full test set against the exact point estimate
  (``point_error``), measured.

Image metrics (I-AUROC, I-AP) and the authors' per-image PRO are always exact.

Intervals are percentile intervals of the resampled values; paired comparisons use the
same resamples for both methods (the resamples depend only on the seed and the test
images' keys, never on a submission).
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from .curves import ThresholdCounts, UndefinedMetricWarning, aupro_from, average_precision_from, roc_auc_from
from .engine import NegativeCounts, PositiveIndex, order_keys
from .evaluate import CategoryEvaluation, ImageObserver, ImageScore, ImageTruth
from .protocols import PROTOCOLS, Protocol

__all__ = ["DEFAULT_MAX_LEVELS", "BOOTSTRAP_METRICS", "CategorySamples", "BootstrapObserver",
           "resample_weights", "resample_metrics", "category_samples", "point_metrics", "percentile_interval",
           "BootstrapResult", "bootstrap_category", "bootstrap_submission", "summarize_bootstrap",
           "paired_comparison", "auroc_tie_bound"]

DEFAULT_MAX_LEVELS = 4096
from .metric_names import METRICS as BOOTSTRAP_METRICS  # noqa: E402  (one list of metric names)
_CHUNK = 64  # resamples per matrix product


@dataclass
class CategorySamples:
    """Per-image statistics of one category for one submission (see module doc).

    Rows are the test images in ``image_ids`` order (sorted keys).
    """

    folder: str
    code: str
    image_ids: list[str]
    defect: np.ndarray        # (n,) bool: the stratum (defective folder)
    label: np.ndarray         # (n,) int8: the label the image metrics use
    score: np.ndarray         # (n,) float64: image scores
    n_regions: np.ndarray     # (n,) int64
    pro_paper: np.ndarray     # (n,) float64 (NaN where not computed)
    levels: np.ndarray        # (K,) float64
    exact: bool
    pos_count: np.ndarray     # (n, K) float64 (integer values)
    pos_weight: np.ndarray    # (n, K) float64
    neg_on: np.ndarray        # (n, K) float64 (integer values)
    neg_below: np.ndarray     # (n, K + 1) float64 (integer values)
    fpr_limit: float = 0.3
    paper_pro: bool = False   # aupro is the mean of the authors' per-image PRO
    types: list[tuple[str, ...]] = field(default_factory=list)  # defect types of each image (() for good)

    def subset(self, rows: Sequence[int] | np.ndarray, code: str) -> "CategorySamples":
        """The statistics of some of the images (e.g. one defect type's breakdown), same levels."""
        rows = np.asarray(rows, np.int64)
        return replace(self, code=code, image_ids=[self.image_ids[i] for i in rows], defect=self.defect[rows],
                       label=self.label[rows], score=self.score[rows], n_regions=self.n_regions[rows],
                       pro_paper=self.pro_paper[rows], pos_count=self.pos_count[rows],
                       pos_weight=self.pos_weight[rows], neg_on=self.neg_on[rows], neg_below=self.neg_below[rows],
                       types=[self.types[i] for i in rows] if self.types else [])

    def type_rows(self) -> dict[str, np.ndarray]:
        """For each defect type, the rows of its breakdown: its defective images and every good one."""
        names = sorted({t for ty in self.types for t in ty})
        return {t: np.array([i for i, ty in enumerate(self.types) if not self.defect[i] or t in ty], np.int64)
                for t in names}


class _CategoryCollector:
    """Collects one category's per-image statistics (pass 1 single-threaded, pass 2 threaded)."""

    def __init__(self, folder: str, n: int, max_levels: int) -> None:
        self.folder = folder
        self.n = n
        self.max_levels = max_levels
        self.ids: list[str | None] = [None] * n
        self.types: list[tuple[str, ...]] = [()] * n
        self.defect = np.zeros(n, bool)
        self.label = np.zeros(n, np.int8)
        self.score = np.zeros(n)
        self.n_regions = np.zeros(n, np.int64)
        self.pro = np.full(n, np.nan)
        self.values: list[np.ndarray | None] = [None] * n
        self.weights: list[np.ndarray | None] = [None] * n
        self.levels: np.ndarray | None = None
        self.exact = True
        self._index: PositiveIndex | None = None

    def add(self, i: int, truth: ImageTruth, result: ImageScore) -> None:
        self.ids[i] = truth.image_id
        self.types[i] = tuple(truth.types)
        self.defect[i] = truth.defect
        self.label[i] = truth.label
        self.score[i] = result.score
        self.n_regions[i] = truth.positives.n_regions
        self.pro[i] = result.pro_paper
        self.values[i] = np.asarray(result.values, np.float64)
        self.weights[i] = truth.positives.weights

    def end_pass1(self) -> None:
        values = [v for v in self.values if v is not None and v.size]
        distinct = np.unique(np.concatenate(values)) if values else np.zeros(0)
        if distinct.size <= self.max_levels:
            self.levels, self.exact = distinct, True
        else:
            ranks = np.unique(np.linspace(0, distinct.size - 1, self.max_levels).round().astype(np.int64))
            self.levels, self.exact = distinct[ranks], False
        self._index = PositiveIndex(order_keys(self.levels))
        k = self.levels.size
        self.pos_count = np.zeros((self.n, k))
        self.pos_weight = np.zeros((self.n, k))
        self.neg_on = np.zeros((self.n, k))
        self.neg_below = np.zeros((self.n, k + 1))
        for i in range(self.n):
            v = self.values[i]
            if v is None or not v.size:
                continue
            lev = np.searchsorted(self.levels, v, side="right") - 1
            self.pos_count[i] = np.bincount(lev, minlength=k)
            self.pos_weight[i] = np.bincount(lev, weights=self.weights[i], minlength=k)
        self.values = self.weights = []  # type: ignore[assignment]

    def add_normals(self, i: int, on_grid: np.ndarray, flat_positive: np.ndarray | None) -> None:
        skip = None
        if flat_positive is not None and flat_positive.size:
            skip = np.zeros(np.asarray(on_grid).size, bool)
            skip[flat_positive] = True
        k = self.levels.size
        counts = self._index.empty_counts()
        self._index.count(on_grid, counts, skip=skip)  # exact counts against the levels
        if self.exact or k == 0:
            self.neg_on[i] = counts.on
            self.neg_below[i] = counts.below
        else:  # binned: a score strictly between two levels is rounded down to the lower one
            self.neg_on[i] = counts.on
            self.neg_on[i, :-1] += counts.below[1:k]
            self.neg_below[i, 0] = counts.below[0]
            self.neg_below[i, k] = counts.below[k]

    def samples(self, code: str, protocol: Protocol) -> CategorySamples:
        order = np.argsort(np.array(self.ids, dtype=object).astype(str), kind="stable")
        return CategorySamples(
            folder=self.folder, code=code, image_ids=[self.ids[j] for j in order],  # type: ignore[misc]
            defect=self.defect[order], label=self.label[order], score=self.score[order],
            n_regions=self.n_regions[order], pro_paper=self.pro[order], levels=self.levels,
            exact=self.exact, pos_count=self.pos_count[order], pos_weight=self.pos_weight[order],
            neg_on=self.neg_on[order], neg_below=self.neg_below[order], fpr_limit=protocol.fpr_limit,
            paper_pro=protocol.aupro == "paper_per_image", types=[self.types[j] for j in order])


class BootstrapObserver(ImageObserver):
    """Builds :class:`CategorySamples` for every category while a submission is scored.

    With ``n_resamples``, each category is resampled as soon as it is scored and only the
    resampled metrics are kept (:meth:`result`); its per-image arrays are dropped unless
    ``keep_samples``.

    Parameters
    ----------
    protocol : Protocol
        The protocol the submission is scored with.
    n_resamples : int
        Bootstrap resamples per category (0: only collect ``samples``).
    seed : int
        Seed of the resamples (with the category code and the image keys).
    confidence : float
        Level of the percentile intervals.
    max_levels : int
        Most levels per category (see module doc); exact below it.
    """

    def __init__(self, protocol: Protocol, *, n_resamples: int = 0, seed: int = 0, confidence: float = 0.95,
                 max_levels: int = DEFAULT_MAX_LEVELS, keep_samples: bool | None = None) -> None:
        if max_levels < 2:
            raise ValueError(f"max_levels must be at least 2, got {max_levels}")
        if n_resamples < 0:
            raise ValueError(f"n_resamples must be >= 0, got {n_resamples}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        self.protocol = protocol
        self.max_levels = max_levels
        self.n_resamples = n_resamples
        self.seed = seed
        self.confidence = confidence
        self.keep_samples = (n_resamples == 0) if keep_samples is None else keep_samples
        self.samples: dict[str, CategorySamples] = {}
        self._boot = BootstrapResult(n_resamples, seed, confidence, {}, {}, {}, {}, {}, {}, max_levels)
        self._current: _CategoryCollector | None = None

    def start(self, folder: str, n: int) -> None:
        """A category of ``n`` images begins."""
        self._current = _CategoryCollector(folder, n, self.max_levels)

    def pass1(self, i: int, truth: ImageTruth, result: ImageScore) -> None:
        """Keep image ``i``'s anomalous scores, weights, score and label."""
        self._current.add(i, truth, result)

    def end_pass1(self) -> None:
        """Choose the levels; histogram the anomalous pixels."""
        self._current.end_pass1()

    def pass2(self, i: int, on_grid: np.ndarray, flat_positive: np.ndarray) -> None:
        """Histogram image ``i``'s normal pixels (thread-safe: one row per image)."""
        self._current.add_normals(i, on_grid, flat_positive)

    def finish(self, evaluation: CategoryEvaluation) -> None:
        """Resample the category (when asked); keep its statistics (when asked)."""
        cur = self._current
        s = cur.samples(evaluation.code, self.protocol)
        self._current = None
        if self.n_resamples:
            self._boot.add_category(s.folder, s)
        if self.keep_samples:
            self.samples[s.folder] = s

    def result(self) -> "BootstrapResult":
        """The resampled metrics of every category scored so far."""
        if not self.n_resamples:
            raise ValueError("this observer was made with n_resamples=0")
        return self._boot


def category_samples(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], *, scores: Sequence[float] | None = None,
                     defect: Sequence[bool] | None = None, code: str = "X", fpr_limit: float = 0.3,
                     max_levels: int = DEFAULT_MAX_LEVELS) -> CategorySamples:
    """Per-image statistics from arrays (masks and maps of one category, on one grid).

    Parameters
    ----------
    masks : sequence of ndarray of shape (H_i, W_i)
        Ground truth (non-zero = anomalous; regions are 8-connected).
    maps : sequence of ndarray of shape (H_i, W_i)
        Anomaly maps.
    scores : sequence of float, optional
        Image scores (default: the maximum of each map).
    defect : sequence of bool, optional
        The stratum of each image (default: its mask has an anomalous pixel).
    """
    from .metrics import _check_binary_truth
    from .pixels import extract_positives

    n = len(maps)
    if len(masks) != n:
        raise ValueError(f"{len(masks)} masks but {n} maps")
    masks = [_check_binary_truth(np.asarray(g), f"image {i}: the mask") for i, g in enumerate(masks)]
    col = _CategoryCollector(code, n, max_levels)
    for i, (m, g) in enumerate(zip(maps, masks)):
        pos = extract_positives(np.asarray(m), np.asarray(g))
        is_defect = bool(np.asarray(g).any()) if defect is None else bool(defect[i])
        truth = ImageTruth(f"{code}/test/x/{i:06d}", "x", (), is_defect, np.asarray(m).shape,
                           int(np.asarray(g).any()), pos)
        score = float(np.max(m)) if scores is None else float(scores[i])
        values = np.asarray(m).reshape(-1)[pos.flat_index]
        col.add(i, truth, ImageScore(truth.image_id, score, "", truth.shape, float("nan"), values))
    col.end_pass1()
    for i, (m, g) in enumerate(zip(maps, masks)):
        col.add_normals(i, np.asarray(m), np.flatnonzero(np.asarray(g).reshape(-1)))
    return col.samples(code, replace(PROTOCOLS["standard"], fpr_limit=fpr_limit))


# resampling --------------------------------------------------------------------------

def resample_weights(image_ids: Sequence[str], defect: np.ndarray, *, n_resamples: int, seed: int,
                     stratum_key: str) -> np.ndarray:
    """Multiplicities of a stratified bootstrap, shape ``(n_resamples, n_images)``, int32.

    Good and defective images are resampled separately with replacement. The draws depend
    only on ``seed``, ``stratum_key`` (e.g. the category code) and the sorted image keys, so
    two submissions of the same test set get the same resamples (paired comparisons).
    """
    ids = np.asarray(list(image_ids), dtype=object).astype(str)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stratum_key.encode())]))
    w = np.zeros((n_resamples, ids.size), np.int32)
    for flag in (False, True):
        idx = np.flatnonzero(np.asarray(defect, bool) == flag)
        idx = idx[np.argsort(ids[idx], kind="stable")]
        m = idx.size
        if m == 0:
            continue
        draws = rng.integers(0, m, size=(n_resamples, m))
        counts = np.zeros((n_resamples, m), np.int32)
        np.add.at(counts, (np.repeat(np.arange(n_resamples), m), draws.ravel()), 1)
        w[:, idx] = counts
    return w


def _metrics_from(pos_count: np.ndarray, pos_weight: np.ndarray, on: np.ndarray, below: np.ndarray,
                  n_regions: float, fpr_limit: float) -> tuple[float, float, float]:
    neg = NegativeCounts(np.rint(below).astype(np.int64), np.rint(on).astype(np.int64))
    tc = ThresholdCounts.build(np.arange(on.size, dtype=np.float64), np.rint(pos_count).astype(np.int64), neg,
                               pro_weight=pos_weight, n_regions=int(round(n_regions)))
    return roc_auc_from(tc), average_precision_from(tc), aupro_from(tc, fpr_limit=fpr_limit)


def _image_tables(s: CategorySamples) -> tuple[np.ndarray, np.ndarray]:
    """(n, S) one-hot tables of positive and negative images over the distinct image scores."""
    distinct, inv = np.unique(s.score, return_inverse=True)
    onehot = np.zeros((s.score.size, distinct.size))
    onehot[np.arange(s.score.size), inv] = 1.0
    lab = s.label.astype(bool)[:, None]
    return onehot * lab, onehot * ~lab


def resample_metrics(s: CategorySamples, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of every resample: ``{metric: (n_resamples,) float64}``.

    ``weights`` are multiplicities of shape ``(n_resamples, n_images)``; a row of ones
    gives the point estimate on the levels (exact when ``s.exact``).
    """
    weights = np.asarray(weights, np.float64)
    b = weights.shape[0]
    out = {m: np.full(b, np.nan) for m in BOOTSTRAP_METRICS}
    if s.paper_pro:
        out["aupro_mvtec"] = np.full(b, np.nan)
    img_pos, img_neg = _image_tables(s)
    img_zero = np.zeros(img_pos.shape[1] + 1, np.int64)
    img_levels = np.arange(img_pos.shape[1], dtype=np.float64)
    pro_ok = ~np.isnan(s.pro_paper) & s.defect
    pro_vals = np.where(pro_ok, s.pro_paper, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for lo in range(0, b, _CHUNK):
            w = weights[lo:lo + _CHUNK]
            pc, pw = w @ s.pos_count, w @ s.pos_weight
            on, below = w @ s.neg_on, w @ s.neg_below
            regions = w @ s.n_regions.astype(np.float64)
            ip, ineg = np.rint(w @ img_pos).astype(np.int64), np.rint(w @ img_neg).astype(np.int64)
            for j in range(w.shape[0]):
                r = lo + j
                auroc, ap, aupro = _metrics_from(pc[j], pw[j], on[j], below[j], regions[j], s.fpr_limit)
                out["pixel_auroc"][r], out["pixel_ap"][r] = auroc, ap
                itc = ThresholdCounts.build(img_levels, ip[j], NegativeCounts(img_zero, ineg[j]))
                out["image_auroc"][r] = roc_auc_from(itc)
                out["image_ap"][r] = average_precision_from(itc)
                if s.paper_pro:
                    out["aupro_mvtec"][r] = aupro
                    denom = float(w[j] @ pro_ok)
                    out["aupro"][r] = float(w[j] @ pro_vals) / denom if denom else np.nan
                else:
                    out["aupro"][r] = aupro
    return out


def point_metrics(s: CategorySamples) -> dict[str, float]:
    """The metrics of the whole test set on the levels (no resampling)."""
    return {k: float(v[0]) for k, v in resample_metrics(s, np.ones((1, len(s.image_ids)))).items()}


def auroc_tie_bound(s: CategorySamples) -> float:
    """Upper bound on ``|binned P-AUROC - exact P-AUROC|`` of the whole test set (0 when exact)."""
    if s.exact:
        return 0.0
    pos = s.pos_count.sum(axis=0)
    on = s.neg_on.sum(axis=0)
    p, n = pos.sum(), on.sum() + s.neg_below.sum()
    if p == 0 or n == 0:
        return float("nan")
    return float(0.5 * np.dot(pos, on) / (p * n))


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the finite resampled values (NaN, NaN when there are none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(v, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


@dataclass
class BootstrapResult:
    """Resampled metrics of one submission: per category and the mean over categories."""

    n_resamples: int
    seed: int
    confidence: float
    values: dict[str, dict[str, np.ndarray]]          # category folder -> metric -> (B,)
    exact: dict[str, bool]                            # category folder -> pixel metrics exact?
    levels: dict[str, int]
    point_binned: dict[str, dict[str, float]]         # category -> metric -> binned point value
    auroc_bound: dict[str, float]
    codes: dict[str, str] = field(default_factory=dict)
    max_levels: int = DEFAULT_MAX_LEVELS
    by_type: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)   # folder -> type -> metric
    point_by_type: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # binned point values

    def add_category(self, folder: str, s: CategorySamples) -> None:
        """Resample one category and each of its defect-type breakdowns."""
        self.values[folder], self.point_binned[folder] = bootstrap_category(s, n_resamples=self.n_resamples,
                                                                            seed=self.seed)
        self.auroc_bound[folder] = auroc_tie_bound(s)
        self.exact[folder] = s.exact
        self.levels[folder] = int(s.levels.size)
        self.codes[folder] = s.code
        self.by_type[folder], self.point_by_type[folder] = {}, {}
        for t, rows in s.type_rows().items():
            sub = s.subset(rows, f"{s.code}/{t}")
            self.by_type[folder][t], self.point_by_type[folder][t] = bootstrap_category(
                sub, n_resamples=self.n_resamples, seed=self.seed)

    def mean_values(self) -> dict[str, np.ndarray]:
        """Per-resample mean over the categories (the same resample index in each)."""
        cats = list(self.values)
        metrics = self.values[cats[0]].keys() if cats else ()
        return {m: np.mean([self.values[c][m] for c in cats], axis=0) for m in metrics}


def bootstrap_category(s: CategorySamples, *, n_resamples: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Resampled metrics of one category and its binned point estimate."""
    w = resample_weights(s.image_ids, s.defect, n_resamples=n_resamples, seed=seed, stratum_key=s.code)
    return resample_metrics(s, w), point_metrics(s)


def bootstrap_submission(samples: dict[str, CategorySamples], *, n_resamples: int, seed: int,
                         confidence: float, max_levels: int = DEFAULT_MAX_LEVELS) -> BootstrapResult:
    """Resample every category of a submission (see :func:`bootstrap_category`)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    boot = BootstrapResult(n_resamples, seed, confidence, {}, {}, {}, {}, {}, {}, max_levels)
    for folder, s in samples.items():
        boot.add_category(folder, s)
    return boot


def summarize_bootstrap(boot: BootstrapResult, results: dict[str, Any]) -> dict[str, Any]:
    """The ``bootstrap`` block of results.json: intervals, method and error report.

    ``results`` is the results object whose exact point estimates the intervals belong to.
    """
    conf = boot.confidence
    cats: dict[str, Any] = {}
    for folder, vals in boot.values.items():
        exact_point = results["categories"][folder]
        block: dict[str, Any] = {}
        for m, v in vals.items():
            lo, hi = percentile_interval(v, conf)
            block[m] = {"low": lo, "high": hi, "point_error": _error(boot.point_binned[folder][m], exact_point.get(m))}
        block["pixel_auroc"]["error_bound"] = boot.auroc_bound[folder]
        block["pixel_metrics"] = "exact" if boot.exact[folder] else "binned"
        block["levels"] = boot.levels[folder]
        exact_types = exact_point.get("by_type", {})
        block["by_type"] = {
            t: {m: {"low": lo, "high": hi,
                    "point_error": _error(boot.point_by_type[folder][t][m], exact_types.get(t, {}).get(m))}
                for m, v in tvals.items() for lo, hi in [percentile_interval(v, conf)]}
            for t, tvals in boot.by_type.get(folder, {}).items()}
        cats[folder] = block
    mean_block = {}
    for m, v in boot.mean_values().items():
        lo, hi = percentile_interval(v, conf)
        mean_block[m] = {"low": lo, "high": hi}
    return {
        "method": "percentile bootstrap, test images resampled with replacement within each category, "
                  "good and defective separately",
        "n_resamples": boot.n_resamples, "seed": boot.seed, "confidence": conf, "max_levels": boot.max_levels,
        "max_point_error": max((b[m]["point_error"] for b in cats.values() for m in BOOTSTRAP_METRICS
                                if np.isfinite(b[m]["point_error"])), default=0.0),
        "categories": cats, "mean": mean_block,
    }


def paired_comparison(a: BootstrapResult, b: BootstrapResult, point_a: dict[str, Any], point_b: dict[str, Any],
                      *, metrics: Iterable[str] = BOOTSTRAP_METRICS) -> dict[str, Any]:
    """Paired bootstrap difference A - B on the same resamples, per category and for the mean.

    ``point_a``/``point_b`` are the two results objects (exact point estimates). A category
    is compared only when both scored it; the mean is over those common categories.
    """
    if (a.n_resamples, a.seed) != (b.n_resamples, b.seed):
        raise ValueError("the two bootstraps were drawn with different settings; they cannot be paired")
    common = [c for c in a.values if c in b.values]
    conf = a.confidence
    out: dict[str, Any] = {"categories": {}, "mean": {}}

    def entry(diff: np.ndarray, point: float) -> dict[str, Any]:
        lo, hi = percentile_interval(diff, conf)
        excludes = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
        return {"difference": point, "low": lo, "high": hi, "excludes_zero": excludes}

    metrics = list(metrics)
    for c in common:
        out["categories"][c] = {m: entry(a.values[c][m] - b.values[c][m],
                                         _sub(point_a["categories"][c].get(m), point_b["categories"][c].get(m)))
                                for m in metrics}
    if common:
        for m in metrics:
            diff = np.mean([a.values[c][m] - b.values[c][m] for c in common], axis=0)
            pa = [point_a["categories"][c].get(m) for c in common]
            pb = [point_b["categories"][c].get(m) for c in common]
            point = _sub(_mean(pa), _mean(pb))
            out["mean"][m] = entry(diff, point)
    out["n_categories"] = len(common)
    return out


def _error(binned: float, exact: Any) -> float:
    """|binned - exact|, NaN when the exact value is undefined."""
    if exact is None or not np.isfinite(float(exact)) or not np.isfinite(binned):
        return float("nan")
    return abs(float(binned) - float(exact))


def _mean(values: list[Any]) -> float:
    vals = [float("nan") if v is None else float(v) for v in values]
    return float(np.mean(vals)) if vals else float("nan")


def _sub(x: Any, y: Any) -> float:
    if x is None or y is None:
        return float("nan")
    return float(x) - float(y)
