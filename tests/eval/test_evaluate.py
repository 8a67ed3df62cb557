"""Scoring whole submissions: both protocols against independent computations, breakdowns,
written files, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from threecad.eval.paper import per_image_pro_paper
from threecad.eval.synthetic import write_synthetic_submission
from threecad.commands.eval import score_submission
from threecad.manifest import scan
from tests.conftest import box_mask
from tests.eval.test_metrics import brute_aupro
from tests.eval.test_resize import opencv_ipp

AI = "Aluminum_Ipad"


@pytest.fixture
def small_tree(tree):
    """AI: 2 good, 3 defective (scratch, dent, and a scratch+dent image), 30x40 images."""
    shape = (30, 40)
    tree.image(AI, "test", "good", "000001", size=shape)
    tree.image(AI, "test", "good", "000002", size=shape)
    tree.defect(AI, "scratch", "000003", box_mask(shape, (2, 2, 6, 9)))
    tree.defect(AI, "dent", "000004", box_mask(shape, (10, 10, 20, 20), (25, 30, 28, 33)))
    tree.defect(AI, "scratch", "000005", box_mask(shape, (0, 0, 3, 3)))
    tree.mask(AI, "dent", "000005", box_mask(shape, (20, 20, 24, 30)))
    tree.image(AI, "train", "good", "000000", size=shape)
    return tree


def write_maps(preds: Path, manifest, make, ext=".npy"):
    test = manifest[manifest["split"] == "test"]
    maps = {}
    for row in test.itertuples():
        amap = make(row)
        maps[row.image_id] = amap
        p = preds / row.category / "test" / row.folder / f"{row.stem}{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, amap)
    return maps


def gt_of(row):
    shape = (row.height, row.width)
    m = np.zeros(shape, bool)
    for p in row.mask_paths:
        m |= np.asarray(Image.open(p)) > 0
    return m


def noisy_map(row, rng, shape=None):
    gt = gt_of(row).astype(np.float64)
    amap = gt * rng.random() + rng.random(gt.shape)
    if shape:
        amap = cv2.resize(amap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.round(amap * 8) / 8  # heavy ties


def test_standard_protocol_matches_independent_computation(small_tree, tmp_path):
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(0)
    maps = write_maps(tmp_path / "preds", manifest, lambda r: noisy_map(r, rng))
    res = score_submission(tmp_path / "preds", small_tree.root)
    cat = res["categories"][AI]
    test = manifest[manifest["split"] == "test"].set_index("image_id")
    gts = {k: gt_of(r) for k, r in zip(test.index, test.itertuples())}
    ids = list(test.index)
    y = np.concatenate([gts[k].ravel() for k in ids])
    s = np.concatenate([maps[k].ravel() for k in ids])
    assert cat["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert cat["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert cat["aupro"] == pytest.approx(brute_aupro([maps[k] for k in ids], [gts[k] for k in ids]), abs=1e-9)
    labels = [test.loc[k, "label"] == "defect" for k in ids]
    scores = [maps[k].max() for k in ids]
    assert cat["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert cat["image_ap"] == pytest.approx(average_precision_score(labels, scores))
    assert (cat["n_images"], cat["n_defective"], cat["n_regions"]) == (5, 3, 5)
    assert cat["n_pixels"] == 5 * 30 * 40

    # per type: that type's defective images plus all good images
    for t, members in {"scratch": ["000003", "000005"], "dent": ["000004", "000005"]}.items():
        sub = [k for k in ids if test.loc[k, "label"] == "good" or test.loc[k, "stem"] in members]
        yt = np.concatenate([gts[k].ravel() for k in sub])
        st = np.concatenate([maps[k].ravel() for k in sub])
        block = cat["by_type"][t]
        assert block["pixel_auroc"] == pytest.approx(roc_auc_score(yt, st), abs=1e-9)
        assert block["pixel_ap"] == pytest.approx(average_precision_score(yt, st), abs=1e-9)
        assert block["n_anomalous_pixels"] == int(yt.sum()) and block["n_pixels"] == yt.size
        assert block["aupro"] == pytest.approx(brute_aupro([maps[k] for k in sub], [gts[k] for k in sub]),
                                               abs=1e-9)
        assert block["n_images"] == len(sub)
    assert set(cat["by_size"]) == {"small", "medium", "large"}
    assert cat["by_size"]["small"]["n_regions"] == 5 and cat["by_size"]["medium"]["n_regions"] == 0
    assert cat["by_size"]["small"]["aupro"] == pytest.approx(cat["aupro"])
    assert np.isnan(cat["by_size"]["large"]["aupro"])  # no large region


def test_a_single_type_category_breakdown_is_the_whole(tree, tmp_path):
    """With one defect type, its breakdown holds every image: the same values as the whole
    (computed once), and both match an independent computation."""
    shape = (24, 32)
    tree.image(AI, "test", "good", "000001", size=shape)
    tree.defect(AI, "scratch", "000002", box_mask(shape, (2, 2, 6, 9)))
    tree.defect(AI, "scratch", "000003", box_mask(shape, (10, 10, 20, 20)))
    manifest = scan(tree.root).manifest
    rng = np.random.default_rng(3)
    maps = write_maps(tmp_path / "preds", manifest, lambda r: noisy_map(r, rng))
    cat = score_submission(tmp_path / "preds", tree.root)["categories"][AI]
    test = manifest[manifest["split"] == "test"]
    y = np.concatenate([gt_of(r).ravel() for r in test.itertuples()])
    s = np.concatenate([maps[r.image_id].ravel() for r in test.itertuples()])
    block = cat["by_type"]["scratch"]
    assert block["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert block["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    whole = {k: v for k, v in cat.items() if k not in ("code", "by_type", "by_size")}
    assert list(block) == list(whole)
    assert json.dumps(block) == json.dumps(whole)  # NaN-safe equality of every value


def test_maps_of_another_size_are_resized_bilinearly(small_tree, tmp_path):
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(1)
    small = write_maps(tmp_path / "preds", manifest, lambda r: rng.random((15, 20)).astype(np.float32))
    res = score_submission(tmp_path / "preds", small_tree.root)
    test = manifest[manifest["split"] == "test"]
    y = np.concatenate([gt_of(r).ravel() for r in test.itertuples()])
    with opencv_ipp(False):  # the standard rule is OpenCV's own bilinear code, in float32 for float32 maps
        s = np.concatenate([cv2.resize(small[r.image_id], (40, 30), interpolation=cv2.INTER_LINEAR).ravel()
                            for r in test.itertuples()])
    assert s.dtype == np.float32
    assert res["categories"][AI]["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)


def authors_mask(root: Path, row) -> np.ndarray:
    """The 3CAD authors' loader, written out: only ``ground_truth/<own folder>/<stem>.png``,
    PIL nearest to 256x256, ToTensor (8-bit / 255), > 0.5; zeros for a good image."""
    if row.label == "good":
        return np.zeros((256, 256), bool)
    im = Image.open(root / row.category / "ground_truth" / row.folder / f"{row.stem}.png")
    return (np.asarray(im.resize((256, 256), Image.NEAREST), np.float32) / 255) > 0.5


def test_paper_protocol_hand_checked(small_tree, tmp_path):
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(2)
    maps = write_maps(tmp_path / "preds", manifest, lambda r: rng.random((256, 256)))
    res = score_submission(tmp_path / "preds", small_tree.root, protocol_name="paper")
    cat = res["categories"][AI]
    test = manifest[manifest["split"] == "test"]
    gts = {r.image_id: authors_mask(small_tree.root, r) for r in test.itertuples()}
    ids = list(test["image_id"])
    y = np.concatenate([gts[k].ravel() for k in ids])
    s = np.concatenate([maps[k].ravel() for k in ids])
    assert cat["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    labels = [int(gts[k].any()) for k in ids]
    assert cat["image_auroc"] == pytest.approx(roc_auc_score(labels, [maps[k].max() for k in ids]))
    defective = [k for k in ids if "/good/" not in k]
    expected = np.mean([per_image_pro_paper(maps[k], gts[k]) for k in defective])
    assert cat["aupro"] == pytest.approx(expected, abs=1e-12)
    assert res["protocol"]["name"] == "paper" and res["protocol"]["grid"] == "256x256"


def test_scores_csv_overrides_map_max(small_tree, tmp_path):
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(3)
    write_maps(tmp_path / "preds", manifest, lambda r: rng.random((30, 40)))
    test = manifest[manifest["split"] == "test"]
    lines = ["image,score"] + [f"{r.image_id},{1.0 if r.label == 'good' else 0.0}" for r in test.itertuples()]
    (tmp_path / "preds" / "scores.csv").write_text("\n".join(lines) + "\n")
    res = score_submission(tmp_path / "preds", small_tree.root)
    assert res["categories"][AI]["image_auroc"] == 0.0


def run_cli(*args, rc=0):
    proc = subprocess.run([sys.executable, "-m", "threecad", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == rc, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


def test_cli_writes_three_files_deterministically(sample_root, tmp_path):
    manifest = scan(sample_root, categories=["CS", "IS"]).manifest
    preds = write_synthetic_submission(manifest, tmp_path / "preds", seed=1)
    proc = run_cli("eval", preds, "--data-root", sample_root, "--out", tmp_path / "r1")
    assert "P-AUROC/P-AP" in proc.stdout and "CS" in proc.stdout
    names = sorted(p.name for p in (tmp_path / "r1").iterdir())
    assert names == ["images.csv", "images.parquet", "results.csv", "results.json", "results.md"]
    r1 = json.loads((tmp_path / "r1" / "results.json").read_text())
    assert set(r1["categories"]) == {"Copper_Stator", "Iron_Stator"}
    assert r1["format_version"] == 2 and r1["method"] == "synthetic-demo"
    assert len(r1["submission"]["files"]) == int((manifest["split"] == "test").sum()) + 1
    for c in r1["categories"].values():
        for m in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro"):
            assert 0.0 <= c[m] <= 1.0
    run_cli("eval", preds, "--data-root", sample_root, "--out", tmp_path / "r2", "--threads", "1")
    r2 = json.loads((tmp_path / "r2" / "results.json").read_text())
    for r in (r1, r2):
        r.pop("created"), r.pop("command")
    assert r1 == r2
    csv_rows = (tmp_path / "r1" / "results.csv").read_text().splitlines()
    assert csv_rows[0] == "method,category,breakdown,metric,value"
    assert any(",size:small,aupro," in line for line in csv_rows)
    md = (tmp_path / "r1" / "results.md").read_text()
    assert "| Method | ACC | AI | AMF | ANMF | ANI | AP | CS | IS | Mean |" in md
    out = json.loads(run_cli("eval", preds, "--data-root", sample_root, "--out", tmp_path / "r3", "--json",
                             "--categories", "CS").stdout)
    assert set(out["categories"]) == {"Copper_Stator"}


def test_cli_bad_submission_lists_all_problems_and_writes_nothing(sample_root, tmp_path):
    manifest = scan(sample_root, categories=["CS"]).manifest
    preds = write_synthetic_submission(manifest, tmp_path / "preds", seed=1)
    files = sorted((preds / "Copper_Stator").rglob("*.npy"))
    files[0].unlink()                                              # missing
    np.save(files[1], np.full((4, 4), np.nan))                     # NaN
    np.save(files[2], np.zeros((2, 3, 3)))                         # 3-D
    np.save(files[3].with_suffix(".npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)  # pickled
    (preds / "Copper_Stator" / "test" / "good" / "999999.npy").write_bytes(b"")  # extra
    proc = run_cli("eval", preds, "--data-root", sample_root, rc=1)
    for needle in ("missing_map", "extra_map", "NaN", "pickled", str(files[0].name)):
        assert needle in proc.stderr, needle
    assert not (preds / "results").exists()


def test_cli_usage_errors(sample_root, tmp_path):
    missing = run_cli("eval", tmp_path / "nope", "--data-root", sample_root, rc=2).stderr
    assert "nope does not exist" in missing and "Traceback" not in missing
    (tmp_path / "f.txt").write_text("x")
    assert "neither a folder of anomaly maps nor a .zip" in run_cli("eval", tmp_path / "f.txt", "--data-root",
                                                                   sample_root, rc=2).stderr
    (tmp_path / "p").mkdir()
    assert "none does not exist" in run_cli("eval", tmp_path / "p", "--data-root", tmp_path / "none", rc=2).stderr
    (tmp_path / "empty").mkdir()
    assert "empty is not a 3CAD tree" in run_cli("eval", tmp_path / "p", "--data-root", tmp_path / "empty",
                                                 rc=2).stderr
    assert "invalid choice" in run_cli("eval", tmp_path / "p", "--protocol", "x", rc=2).stderr


def test_every_phase_of_a_category_shows_progress(small_tree, tmp_path, capsys, monkeypatch):
    from threecad.eval.evaluate import evaluate_submission
    from threecad.eval.protocols import get_protocol
    from threecad.eval.results import build_results
    from threecad.eval.submission import load_submission

    monkeypatch.setenv("THREECAD_PROGRESS", "bars")  # bars, not 10-second log lines, on the captured stderr
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(4)
    write_maps(tmp_path / "preds", manifest, lambda r: noisy_map(r, rng))
    submission = load_submission(tmp_path / "preds", manifest)
    protocol = get_protocol("standard")
    evaluations = evaluate_submission(submission, manifest, protocol, workers=2, progress=True)
    err = capsys.readouterr().err
    for phase in ("AI read", "AI sort", "AI count", "AI metrics"):
        assert phase in err
    # the breakdowns were computed under the bar, and build_results reuses them
    assert evaluations[0].summary is not None and set(evaluations[0].summary["by_type"]) == {"dent", "scratch"}
    results = build_results(submission, evaluations, protocol, data_root=small_tree.root)
    summary, block = evaluations[0].summary, results.to_dict()["categories"][AI]
    assert all(block[m] == summary[m] for m in ("pixel_auroc", "pixel_ap", "aupro", "image_auroc"))
    assert capsys.readouterr().err == ""


def test_pass2_runs_cover_every_image_once_in_group_order():
    from types import SimpleNamespace

    from threecad.eval.evaluate import _group_runs

    rng = np.random.default_rng(5)
    records = [SimpleNamespace(group=int(rng.integers(0, 6)), n_pixels=int(rng.integers(1, 1000))) for _ in range(40)]
    for workers in (1, 2, 3, 7):
        runs = _group_runs(records, workers)
        flat = [i for run in runs for i, _ in run]
        assert sorted(flat) == list(range(40)) and 1 <= len(runs) <= workers
        assert [records[i].group for i in flat] == sorted(r.group for r in records)


def test_pass1_takes_only_the_anomalous_values_of_a_map_it_would_upscale(small_tree):
    """Under ``standard`` a smaller map is not resized whole in pass 1; its anomalous
    pixels' values are those of the whole resize, bit for bit, and so is the result."""
    from dataclasses import replace

    from threecad.eval.evaluate import image_truth, map_on_grid, score_image
    from threecad.eval.protocols import IMAGE_SCORE_ON_GRID, get_protocol

    standard = get_protocol("standard")
    manifest = scan(small_tree.root).manifest
    row = manifest[(manifest["split"] == "test") & (manifest["stem"] == "000004")].iloc[0].to_dict()
    truth = image_truth(row, standard)
    amap = np.random.default_rng(5).random((15, 20)).astype(np.float32)
    scored, on_grid = score_image(amap, truth, None, "", standard)
    assert on_grid is None and scored.shape == (30, 40) and scored.score == float(amap.max())
    whole = map_on_grid(amap, truth.shape, standard)
    assert scored.values.dtype == np.float32
    assert np.array_equal(scored.values, whole.reshape(-1)[truth.positives.flat_index])
    # a protocol that needs the whole map on the grid (its image score) still gets it
    on_grid_score = replace(standard, image_score=IMAGE_SCORE_ON_GRID)
    scored2, on_grid2 = score_image(amap, truth, None, "", on_grid_score)
    assert on_grid2 is not None and scored2.score == float(whole.max())
    assert np.array_equal(scored2.values, scored.values)


def test_a_categorys_metrics_run_beside_the_next_read_and_end_before_its_count(tree, tmp_path, monkeypatch):
    """evaluate_submission computes a category's metrics while the next category is read
    and sorted, waits for them before that one's normal pixels are counted, and raises what
    they raised."""
    import threading

    import threecad.eval.evaluate as evaluate
    from threecad.eval.evaluate import ImageObserver, evaluate_submission
    from threecad.eval.protocols import get_protocol
    from threecad.eval.submission import load_submission

    shape = (30, 40)
    for cat in (AI, "Aluminum_Pc"):
        tree.image(cat, "test", "good", "000001", size=shape)
        tree.defect(cat, "dent", "000002", box_mask(shape, (2, 2, 6, 9)))
    manifest = scan(tree.root).manifest
    rng = np.random.default_rng(5)
    write_maps(tmp_path / "preds", manifest, lambda r: noisy_map(r, rng))
    submission = load_submission(tmp_path / "preds", manifest)
    events = []
    summarize = evaluate.summarize_counted

    def slow_summarize(ev, protocol, progress=False):
        events.append(("metrics begin", ev.category, threading.current_thread().name.startswith("metrics")))
        threading.Event().wait(0.3)
        out = summarize(ev, protocol, progress=progress)
        events.append(("metrics end", ev.category, None))
        return out

    class Order(ImageObserver):
        def start(self, folder, n):
            events.append(("read", folder, None))

        def pass2(self, i, on_grid, flat_positive):
            events.append(("count", None, None))

    monkeypatch.setattr(evaluate, "summarize_counted", slow_summarize)
    evaluations = evaluate_submission(submission, manifest, get_protocol("standard"), workers=2, observer=Order())
    first, second = submission.categories
    names = [e[:2] for e in events]
    second_read = names.index(("read", second))
    second_count = names.index(("count", None), second_read)  # its first normal pixels counted
    assert names.index(("metrics end", first)) < second_count
    assert second_read < names.index(("metrics end", first))  # the read did not wait
    assert all(e[2] for e in events if e[0] == "metrics begin")
    assert all(ev.summary is not None for ev in evaluations)

    def failing(ev, protocol, progress=False):
        raise RuntimeError(f"metrics of {ev.code} failed")

    monkeypatch.setattr(evaluate, "summarize_counted", failing)
    with pytest.raises(RuntimeError, match="metrics of .* failed"):
        evaluate_submission(submission, manifest, get_protocol("standard"), workers=2)
