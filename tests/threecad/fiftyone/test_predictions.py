"""A submission in the dataset: heatmap files on a shared scale, per-sample results, saved views."""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image

from tests.eval.test_resize import opencv_ipp


def test_heatmaps_are_files_on_one_scale_per_category(built, sample_preds):
    from threecad.eval.mapio import read_map

    dataset, report, media = built
    (pr,) = report.predictions
    assert pr.prefix == "synthetic_demo" and pr.images == len(dataset)
    by_code: dict[str, set] = {}
    for s in dataset:
        h = s.synthetic_demo_heatmap
        assert h.map is None and h.map_path.startswith(str(media))
        assert list(h.range) == [0, 255]
        by_code.setdefault(s.code, set()).add((h.value_min, h.value_max))
        png = np.asarray(Image.open(h.map_path))
        amap = read_map(sample_preds / f"{s.image_id}.npy")
        assert png.dtype == np.uint8 and png.shape == amap.shape
    assert all(len(v) == 1 for v in by_code.values()), by_code  # one scale per category, never per image
    assert len({next(iter(v)) for v in by_code.values()}) == len(by_code)  # and categories differ
    assert set(by_code) == set(pr.scales)
    # the file is the map on the category's scale: value_min -> 0, value_max -> 255, clipped
    s = dataset.match({"label": "defect"}).first()
    lo, hi = s.synthetic_demo_heatmap.value_min, s.synthetic_demo_heatmap.value_max
    amap = read_map(sample_preds / f"{s.image_id}.npy").astype(np.float64)
    want = np.clip(np.rint((amap - lo) * 255 / (hi - lo)), 0, 255)
    got = np.asarray(Image.open(s.synthetic_demo_heatmap.map_path)).astype(np.float64)
    assert np.abs(got - want).max() <= 1
    assert lo < hi and (got == 0).mean() > 0.2  # half the normal surface is transparent


def test_per_sample_results_match_the_scoring_engine(built, sample_root, sample_preds):
    from threecad.eval.evaluate import evaluate_submission
    from threecad.eval.mapio import read_map
    from threecad.eval.protocols import get_protocol
    from threecad.eval.submission import load_submission
    from threecad.manifest import load_manifest

    dataset, _, _ = built
    manifest = load_manifest(sample_root)
    submission = load_submission(sample_preds, manifest)
    records = {r.image_id: r for ev in evaluate_submission(submission, manifest, get_protocol("paper"), workers=1)
               for r in ev.records}
    rows = {r["image_id"]: r for r in manifest.to_dict("records")}
    checked = 0
    for s in dataset:
        rec = records[s.image_id]
        assert math.isclose(s.synthetic_demo_score, rec.score)
        if s.label == "good":
            assert s.synthetic_demo_pro is None
        elif math.isnan(rec.pro_paper):
            assert s.synthetic_demo_pro is None
        else:
            assert math.isclose(s.synthetic_demo_pro, rec.pro_paper, rel_tol=1e-12)
            checked += 1
        # max on normal pixels, on the native grid (maps resized bilinearly, as eval does)
        row = rows[s.image_id]
        import cv2

        amap = read_map(submission.maps[s.image_id])
        work = np.float32 if amap.dtype in (np.float16, np.float32, np.uint8) else np.float64  # the standard rule
        with opencv_ipp(False):  # OpenCV's own code: its IPP path rounds by CPU
            grid = cv2.resize(amap.astype(work), (row["width"], row["height"]), interpolation=cv2.INTER_LINEAR)
        gt = np.zeros(grid.shape, bool)
        for p in row["mask_paths"]:
            gt |= np.asarray(Image.open(p)) > 0
        assert math.isclose(s.synthetic_demo_max_normal, grid[~gt].max(), rel_tol=1e-9)
        assert len(s.synthetic_demo_regions.detections) == s.n_regions
        for d, g in zip(s.synthetic_demo_regions.detections, s.regions.detections):
            assert d.bounding_box == g.bounding_box and d.label == g.label
            assert 0.0 <= d.coverage <= 1.0 and d.missed == (d.coverage < 0.1)
        assert s.synthetic_demo_missed == sum(d.missed for d in s.synthetic_demo_regions.detections)
    assert checked > 10


def test_saved_views(built):
    from threecad.fiftyone.predictions import MISSED_COVERAGE

    dataset, report, _ = built
    names = {"synthetic-demo-worst-false-positives", "synthetic-demo-missed-regions", "synthetic-demo-best-detections"}
    assert names <= set(dataset.list_saved_views()) and set(report.views) == names

    worst = dataset.load_saved_view("synthetic-demo-worst-false-positives")
    scores = worst.values("synthetic_demo_score")
    assert set(worst.distinct("label")) == {"good"} and scores == sorted(scores, reverse=True)
    assert len(worst) == len(dataset.match({"label": "good"}))
    assert scores[0] == max(dataset.match({"label": "good"}).values("synthetic_demo_score"))

    missed = dataset.load_saved_view("synthetic-demo-missed-regions")
    assert len(missed) > 0
    # only the missed regions are drawn: no mask, outline or other region field in the view
    schema = missed.get_field_schema()
    assert not {"ground_truth", "ground_truth_outline", "regions"} & set(schema)
    assert "synthetic_demo_heatmap" in schema and "defect_types" in schema
    for s in missed:
        assert s.synthetic_demo_regions.detections
        assert all(d.coverage < MISSED_COVERAGE for d in s.synthetic_demo_regions.detections)
    counts = missed.values("synthetic_demo_missed")
    assert counts == sorted(counts, reverse=True) and min(counts) >= 1
    n_missed = sum(dataset.values("synthetic_demo_missed"))
    assert sum(len(s.synthetic_demo_regions.detections) for s in missed) == n_missed

    best = dataset.load_saved_view("synthetic-demo-best-detections")
    pros = best.values("synthetic_demo_pro")
    assert set(best.distinct("label")) == {"defect"} and pros == sorted(pros, reverse=True)
    assert None not in pros


def test_adding_predictions_again_replaces_them(fo, sample_root, sample_preds, tmp_path):
    from threecad.fiftyone.api import build_view_dataset

    media = tmp_path / "media"
    first, _ = build_view_dataset(sample_root, preds=[sample_preds], categories=["CS"], media_dir=media,
                                  name="t-preds-again")
    before = dict(zip(*first.values(["image_id", "synthetic_demo_score"])))
    again, report = build_view_dataset(sample_root, preds=[sample_preds], categories=["CS"], media_dir=media,
                                       name="t-preds-again")
    assert report.build.unchanged == len(again) and dict(zip(*again.values(["image_id", "synthetic_demo_score"]))) \
        == before
    assert len(again.list_saved_views()) == 3


def test_field_prefix_is_short_and_unambiguous():
    from threecad.fiftyone.predictions import PREFIX_MAX, field_prefix

    assert field_prefix("synthetic-demo") == "synthetic_demo"
    assert field_prefix("2024 model") == "m_2024_model"
    a = field_prefix("PatchKNN training-free baseline")
    b = field_prefix("PatchKNN training-free baseline v2")
    assert a != b and a.startswith("patchknn_") and b.startswith("patchknn_")
    assert all(len(p) <= PREFIX_MAX for p in (a, b)) and a == field_prefix("PatchKNN training-free baseline")
    assert re.fullmatch(r"[a-z][a-z0-9_]*", a)


def test_scale_note_per_sample(built):
    dataset, report, _ = built
    (pr,) = report.predictions
    for s in dataset.select_fields(["code", "synthetic_demo_scale"]):
        sc = pr.scales[s.code]
        assert s.synthetic_demo_scale == (f"{s.code} heatmap: clear <= {sc['value_min']:.4g}, full >= "
                                          f"{sc['value_max']:.4g}; 1 % FPR at {sc['threshold_fpr_1pct']:.4g}")


def test_heatmaps_are_cached_by_submission_digest(fo, sample_root, sample_preds, tmp_path):
    import os
    import shutil

    from threecad.fiftyone.api import build_view_dataset

    preds = tmp_path / "preds"
    shutil.copytree(sample_preds, preds)
    media = tmp_path / "media"
    _, first = build_view_dataset(sample_root, preds=[preds], categories=["CS"], media_dir=media, name="t-cache")
    (pr,) = first.predictions
    assert not pr.cached
    dataset, again = build_view_dataset(sample_root, preds=[preds], categories=["CS"], media_dir=media,
                                        name="t-cache")
    (pr2,) = again.predictions
    assert pr2.cached and pr2.scales == pr.scales and pr2.images == pr.images
    # a changed map, or a heatmap file gone, is recomputed
    one = sorted((preds / "Copper_Stator").rglob("*.npy"))[0]
    np.save(one, np.load(one) * 2.0 + 1.0)
    _, changed = build_view_dataset(sample_root, preds=[preds], categories=["CS"], media_dir=media, name="t-cache")
    assert not changed.predictions[0].cached
    key = one.relative_to(preds).with_suffix("").as_posix()
    s = dataset.select_by("image_id", [key]).first()
    assert s.synthetic_demo_score == float(np.load(one).max())
    os.unlink(s.synthetic_demo_heatmap.map_path)
    _, gone = build_view_dataset(sample_root, preds=[preds], categories=["CS"], media_dir=media, name="t-cache")
    assert not gone.predictions[0].cached and os.path.isfile(s.synthetic_demo_heatmap.map_path)
