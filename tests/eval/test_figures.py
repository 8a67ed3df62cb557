"""Curves for drawing: thinning keeps the area, the curves are the engine's exact ones
(against scikit-learn and the literal MVTec AUPRO), the plots are written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from threecad.eval.evaluate import evaluate_submission
from threecad.eval.figures import (CURVE_FILES, CURVE_KINDS, CurveCollector, category_curves, downsample,
                                   method_curve_figures, trapezoid_area, write_curve_plots)
from threecad.eval.protocols import get_protocol
from threecad.eval.submission import load_submission
from threecad.eval.synthetic import write_synthetic_submission
from threecad.manifest import scan
from tests.eval.test_evaluate import AI, gt_of, noisy_map, run_cli, small_tree, write_maps  # noqa: F401
from tests.eval.test_metrics import brute_aupro


def _is_subset(x, y, fx, fy):
    pairs = set(zip(fx.tolist(), fy.tolist()))
    return all(p in pairs for p in zip(x.tolist(), y.tolist()))


def _on_polyline(px, py, x, y, eps=1e-12):
    """Whether every point (px, py) lies on a segment of the polyline (x, y)."""
    ax, ay, bx, by = x[:-1, None], y[:-1, None], x[1:, None], y[1:, None]
    cross = (bx - ax) * (py[None] - ay) - (by - ay) * (px[None] - ax)
    inside = ((np.minimum(ax, bx) - eps <= px[None]) & (px[None] <= np.maximum(ax, bx) + eps)
              & (np.minimum(ay, by) - eps <= py[None]) & (py[None] <= np.maximum(ay, by) + eps))
    return bool(np.all(np.any((np.abs(cross) <= eps) & inside, axis=0)))


@pytest.mark.parametrize("n,ties", [(200_000, False), (300_000, True)])
def test_downsample_keeps_area_within_tolerance(n, ties):
    rng = np.random.default_rng(n)
    y_true = rng.random(n) < 0.05
    s = rng.normal(size=n) + 1.5 * y_true
    if ties:
        s = np.round(s * 3000) / 3000  # many ties, still thousands of distinct values
    fpr, tpr, _ = roc_curve(y_true, s, drop_intermediate=False)
    x, y = downsample(fpr, tpr)
    assert fpr.size > 5000 and x.size <= 1000
    assert abs(trapezoid_area(x, y) - roc_auc_score(y_true, s)) <= 1e-4
    assert (x[0], y[0], x[-1], y[-1]) == (fpr[0], tpr[0], fpr[-1], tpr[-1])
    assert np.all(np.diff(x) >= 0) and _is_subset(x, y, fpr, tpr)


def test_downsample_fine_staircase_keeps_more_points_rather_than_move_the_area():
    # alternating one-step right, one-step up: thinning at even steps would cut every corner
    k = 3000
    x = np.repeat(np.arange(k + 1), 2)[1:] / k
    y = np.repeat(np.arange(k + 1), 2)[:-1] / k
    exact = trapezoid_area(x, y)
    tx, ty = downsample(x, y, max_points=1000)
    assert abs(trapezoid_area(tx, ty) - exact) <= 1e-4
    assert _is_subset(tx, ty, x, y)


def test_downsample_small_curve_is_kept_and_bad_input_rejected():
    x = np.array([0.0, 0.0, 0.5, 0.5, 1.0])
    y = np.array([0.0, 0.5, 0.5, 1.0, 1.0])
    tx, ty = downsample(x, y)
    np.testing.assert_array_equal(tx, x)
    np.testing.assert_array_equal(ty, y)
    tx, ty = downsample(np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.0, 0.2, 0.4, 0.4]))  # collinear run
    np.testing.assert_array_equal(tx, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="max_points"):
        downsample(x, y, max_points=1)
    with pytest.raises(ValueError, match="1-D"):
        downsample(x, y[:3])


def _evaluate(root, preds, protocol="standard"):
    manifest = scan(root).manifest
    collector = CurveCollector(fpr_limit=get_protocol(protocol).fpr_limit)
    evs = evaluate_submission(load_submission(preds, manifest[manifest["split"] == "test"]), manifest,
                              get_protocol(protocol), workers=2, observer=collector)
    return manifest, evs, collector


def test_curves_are_the_exact_ones(small_tree, tmp_path):
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(3)
    maps = write_maps(tmp_path / "preds", manifest, lambda r: noisy_map(r, rng))
    manifest, evs, collector = _evaluate(small_tree.root, tmp_path / "preds")
    (cc,) = collector.curves
    assert cc.code == "AI" and cc.category == AI
    test = manifest[manifest["split"] == "test"]
    gts = [gt_of(r) for r in test.itertuples()]
    ms = [maps[k] for k in test["image_id"]]
    y = np.concatenate([g.ravel() for g in gts])
    s = np.concatenate([m.ravel() for m in ms])
    # ROC: the area of the drawn polyline is the AUROC; scikit-learn's corners are on it
    assert cc.roc.metric == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert trapezoid_area(cc.roc.x, cc.roc.y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert _on_polyline(fpr, tpr, cc.roc.x, cc.roc.y)
    # PR: every drawn point (after the start at (0, 1)) is a point of scikit-learn's curve
    prec, rec, _ = precision_recall_curve(y, s)
    sk = set(zip(np.round(rec, 12), np.round(prec, 12)))
    assert (cc.pr.x[0], cc.pr.y[0]) == (0.0, 1.0)
    assert set(zip(np.round(cc.pr.x[1:], 12), np.round(cc.pr.y[1:], 12))) <= sk
    assert cc.pr.metric == pytest.approx(average_precision_score(y, s), abs=1e-12)
    # PRO: cut at the limit; area / limit is the literal MVTec AUPRO
    assert cc.pro.x[-1] == pytest.approx(0.3) and cc.pro.x[0] == 0.0
    ref = brute_aupro(ms, gts)
    assert trapezoid_area(cc.pro.x, cc.pro.y) / 0.3 == pytest.approx(ref, abs=1e-9)
    assert cc.pro.metric == pytest.approx(ref, abs=1e-9)
    # image ROC
    scores = [m.max() for m in ms]
    labels = (test["label"] == "defect").to_numpy()
    assert trapezoid_area(cc.image_roc.x, cc.image_roc.y) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # the same from the glue function on the evaluation itself
    again = category_curves(evs[0])
    np.testing.assert_array_equal(again.pro.y, cc.pro.y)


def test_undefined_curves_are_none(tree, tmp_path):
    shape = (20, 20)
    tree.image(AI, "test", "good", "000001", size=shape)
    tree.image(AI, "test", "good", "000002", size=shape)
    manifest = scan(tree.root).manifest
    write_maps(tmp_path / "preds", manifest, lambda r: np.random.default_rng(0).random(shape))
    _, _, collector = _evaluate(tree.root, tmp_path / "preds")
    (cc,) = collector.curves
    assert cc.roc is cc.pr is cc.pro is cc.image_roc is None
    paths = write_curve_plots(collector.curves, tmp_path / "plots")
    assert [p.name for p in paths] == [CURVE_FILES[k] for k in CURVE_KINDS]


def test_plots_written_and_method_figures(sample_root, tmp_path):
    manifest = scan(sample_root, categories=["CS", "IS"]).manifest
    preds = write_synthetic_submission(manifest, tmp_path / "preds", seed=1)
    proc = run_cli("eval", preds, "--data-root", sample_root, "--categories", "CS,IS", "--out", tmp_path / "r",
                   "--plots", tmp_path / "plots")
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == sorted(CURVE_FILES.values())
    for name in names:
        with Image.open(tmp_path / "plots" / name) as im:
            assert im.format == "PNG" and im.size[0] > 300
    assert "roc_curves.png" in proc.stderr
    _, _, collector = _evaluate(sample_root, preds)
    by_cat = {c.category: c for c in collector.curves}
    figs = method_curve_figures({"a": by_cat, "b": by_cat}, list(by_cat))
    assert set(figs) == set(CURVE_KINDS) and all(v.startswith(b"\x89PNG") for v in figs.values())
    svg = method_curve_figures({"a": by_cat}, list(by_cat), fmt="svg")
    assert b"<svg" in svg["roc"]


def test_plots_refused_on_a_cluster(sample_root, tmp_path):
    proc = run_cli("eval", tmp_path, "--data-root", sample_root, "--plots", tmp_path / "p", "--workers", "2", rc=2)
    assert "--plots" in proc.stderr and "Traceback" not in proc.stderr
