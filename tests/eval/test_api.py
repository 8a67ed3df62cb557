"""The scoring API: Evaluator.score -> Results; the typed record, its views and the per-image table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from threecad.errors import UsageError
from threecad.eval import Evaluator, Metric, Results
from threecad.eval.submission import SubmissionError
from threecad.manifest import scan
from tests.eval.test_evaluate import AI, gt_of, small_tree, write_maps  # noqa: F401  (fixture)
from tests.eval.test_metrics import brute_aupro

EVAL_DIR = Path(__file__).resolve().parents[2] / "eval"


@pytest.fixture
def scored(small_tree, tmp_path):
    """Random maps of the small AI tree, scored with the standard protocol: (results, maps, manifest)."""
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(7)
    maps = write_maps(tmp_path / "preds", manifest, lambda row: rng.random((row.height, row.width)))
    results = Evaluator(small_tree.root, threads=2).score(tmp_path / "preds", command=["test"])
    return results, maps, manifest


def test_score_returns_typed_results_equal_to_the_json(scored):
    results, _, _ = scored
    assert isinstance(results, Results)
    assert list(results.categories) == [AI]
    block = results.categories[AI]
    assert block.code == "AI" and block.values["n_images"] == 5 and block.values["n_defective"] == 3
    obj = json.loads(results.to_json())
    for m in Metric:
        assert obj["categories"][AI][m.value] == block[m] == results.metric(m, "AI")
        assert obj["mean"][m.value] == results.metric(m)
    assert obj["command"] == ["test"] and obj["method"] == results.method


def test_from_json_round_trips_byte_for_byte(scored):
    results, _, _ = scored
    text = results.to_json()
    again = Results.from_json(text)
    assert again.to_json() == text
    assert again.to_csv() == results.to_csv()
    assert again.to_markdown() == results.to_markdown()
    with pytest.raises(ValueError, match="missing"):
        Results.from_json('{"a": 1}')


def test_to_frame_has_every_breakdown(scored):
    results, _, _ = scored
    frame = results.to_frame()
    assert set(frame["breakdown"]) == {"all", "type:dent", "type:scratch", "size:small", "size:medium", "size:large"}
    row = frame[(frame["category"] == "AI") & (frame["breakdown"] == "type:dent")].iloc[0]
    assert row["pixel_auroc"] == results.categories[AI].by_type["dent"]["pixel_auroc"]
    assert frame[frame["category"] == "Mean"].iloc[0]["aupro"] == results.metric(Metric.AUPRO)


def test_markdown_carries_the_breakdowns(scored):
    results, _, _ = scored
    md = results.to_markdown()
    assert "| Method | ACC | AI | AMF | ANMF | ANI | AP | CS | IS | Mean |" in md
    assert "Per defect type" in md and "| AI | dent |" in md and "| AI | scratch |" in md
    assert "AUPRO per region size" in md and "| AI | small |" in md
    text = results.to_text()
    assert "**" not in text and "|" not in text and "P-AUROC/P-AP" in text


def test_image_table_against_brute_force(scored):
    results, maps, manifest = scored
    frame = results.image_frame()
    test = manifest[manifest["split"] == "test"].set_index("image_id")
    assert sorted(frame["image_id"]) == sorted(test.index)
    for r in frame.itertuples():
        row = test.loc[r.image_id]
        amap, gt = maps[r.image_id], gt_of(row)
        assert r.category == "AI" and r.label == int(bool(row["defect_types"]))
        assert list(r.defect_types) == sorted(row["defect_types"])
        assert r.score == amap.max()                               # no scores.csv: the map's maximum
        assert r.max_normal_score == amap[~gt].max()
        assert r.n_anomalous_pixels == gt.sum() and (r.height, r.width) == gt.shape
        if gt.any():
            assert r.max_anomalous_score == amap[gt].max()
            assert r.pro == pytest.approx(brute_aupro([amap], [gt]), abs=1e-9)
        else:
            assert np.isnan(r.max_anomalous_score) and np.isnan(r.pro)
        assert r.map_file == f"{r.image_id}.npy"


def test_per_type_and_size_tallies_match_the_image_table(scored):
    results, _, _ = scored
    frame = results.image_frame()
    block = results.categories[AI]
    assert int(frame["n_regions"].sum()) == block.values["n_regions"]
    assert sum(b["n_regions"] for b in block.by_size.values()) == block.values["n_regions"]


def test_library_errors_speak_in_their_own_terms(small_tree, tmp_path):
    with pytest.raises(UsageError, match="unknown protocol"):
        Evaluator(small_tree.root, protocol="nope")
    with pytest.raises(UsageError, match="at least 1 worker") as exc:
        Evaluator(small_tree.root, n_workers=0)
    assert "--" not in str(exc.value)
    with pytest.raises(UsageError, match="no dataset at"):
        Evaluator(tmp_path / "none").score(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no category folder"):
        Evaluator(small_tree.root).score(tmp_path / "empty")
    bad = tmp_path / "bad" / AI / "test" / "good"
    bad.mkdir(parents=True)
    np.save(bad / "000001.npy", np.full((30, 40), np.nan))
    with pytest.raises(SubmissionError) as err:
        Evaluator(small_tree.root).score(tmp_path / "bad")
    assert {"missing_map"} <= {p.kind for p in err.value.problems}


def test_no_cli_flag_in_the_scoring_package_messages():
    """Library code raises in its own terms: no ``--flag`` inside an error message of eval/."""
    pattern = re.compile(r"(?:Error|Problem)\([^)]*?[\"'][^\"']*--[a-z]", re.S)
    modules = ("api", "results", "leaderboard", "verify", "distributed", "published", "metric_names")
    offenders = [m for m in modules if pattern.search((EVAL_DIR / f"{m}.py").read_text())]
    assert not offenders, offenders


def test_observer_sees_every_image(small_tree, tmp_path):
    from threecad.eval.evaluate import ImageObserver

    class Count(ImageObserver):
        def __init__(self):
            self.seen = []

        def start(self, folder, n):
            pass

        def pass1(self, i, truth, result):
            self.seen.append(truth.image_id)

        def end_pass1(self):
            pass

        def pass2(self, i, on_grid, flat_positive):
            pass

        def finish(self, evaluation):
            pass

    manifest = scan(small_tree.root).manifest
    write_maps(tmp_path / "p", manifest, lambda row: np.zeros((row.height, row.width)))
    obs = Count()
    results = Evaluator(small_tree.root, threads=1).score(tmp_path / "p", observer=obs)
    assert sorted(obs.seen) == sorted(r.image_id for r in results.images)
