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


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int32])
def test_max_normal_against_brute_force(dtype):
    from threecad.eval.api import _max_normal

    rng = np.random.default_rng(3)
    for trial in range(200):
        flat = rng.integers(0, 6, size=int(rng.integers(2, 40))).astype(dtype)
        n_pos = int(rng.integers(0, flat.size))  # at least one normal pixel
        pos = np.sort(rng.choice(flat.size, n_pos, replace=False)).astype(np.int64)
        normal = np.ones(flat.size, bool)
        normal[pos] = False
        assert _max_normal(flat, pos) == flat[normal].max(), trial
    flat = np.array([1.0, 9.0, 9.0, 2.0])       # the top value at an anomalous and at a normal pixel
    assert _max_normal(flat, np.array([1])) == 9.0
    assert _max_normal(flat, np.array([1, 2])) == 2.0


def test_timer_records_every_phase_and_changes_nothing(small_tree, tmp_path):
    from threecad.eval.timing import PhaseTimer

    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(5)
    write_maps(tmp_path / "p", manifest, lambda row: rng.random((row.height, row.width)).astype(np.float32))
    timer = PhaseTimer()
    timed = Evaluator(small_tree.root, threads=2).score(tmp_path / "p", command=["t"], timer=timer)
    plain = Evaluator(small_tree.root, threads=2).score(tmp_path / "p", command=["t"])
    assert [p.name for p in timer.phases] == [
        "scan the ground truth", "validate the submission", "AI read (5 images)", "AI count", "AI metrics",
        "results (digests, per-image table)"]
    assert all(p.wall >= 0 and p.cpu >= 0 for p in timer.phases)
    assert json.loads(timed.to_json()) | {"created": 0} == json.loads(plain.to_json()) | {"created": 0}
    report = timer.report().splitlines()
    assert report[0].split() == ["phase", "wall", "s", "CPU", "s", "share"] and report[-1].startswith("total")
    assert len(report) == len(timer.phases) + 2


def test_cli_timings_flag_prints_the_phases(small_tree, tmp_path, capsys):
    from threecad.cli import main

    manifest = scan(small_tree.root).manifest
    write_maps(tmp_path / "p", manifest, lambda row: np.ones((row.height, row.width), np.float32))
    assert main(["eval", str(tmp_path / "p"), "--data-root", str(small_tree.root), "--no-progress",
                 "--out", str(tmp_path / "r"), "--timings"]) == 0
    err = capsys.readouterr().err
    table = err.split("time per phase (--timings):\n", 1)[1].splitlines()
    names = [line.rsplit(maxsplit=4)[0] if not line.startswith("before") else "start-up" for line in table[1:-1]]
    assert names == ["start-up", "imports", "scan the ground truth", "validate the submission", "AI read (5 images)",
                     "AI count", "AI metrics", "results (digests, per-image table)", "write the results"]
    assert (tmp_path / "r" / "results.json").is_file()


def test_image_table_same_whatever_the_threads(small_tree, tmp_path):
    manifest = scan(small_tree.root).manifest
    rng = np.random.default_rng(11)
    write_maps(tmp_path / "p", manifest, lambda row: rng.random((row.height, row.width)).astype(np.float32))
    frames = [Evaluator(small_tree.root, threads=t).score(tmp_path / "p").image_frame() for t in (1, 3)]
    assert frames[0]["pro"].notna().sum() == 3
    assert frames[0].equals(frames[1])


def test_image_table_pool_recovers_after_a_failed_category(small_tree):
    """A category that fails in pass 2 leaves tasks behind; the next category starts clean."""
    from threecad.eval.api import ImageTableObserver
    from threecad.eval.engine import order_keys
    from threecad.eval.pixels import ImagePositives
    from threecad.eval.protocols import get_protocol

    obs = ImageTableObserver(get_protocol("standard"), threads=2)
    flat = np.array([0, 1], np.int64)
    keys = order_keys(np.array([0.0, 1.0], np.float32))
    positives = ImagePositives(flat, keys, np.full(2, 0.5), np.zeros(2, np.int8), 1, (1, 0, 0))
    obs.start("Aluminum_Ipad", 1)
    obs._ids[0] = "a"
    obs.extras["a"] = {}
    obs._positives[0] = positives
    obs.pass2(0, np.arange(16, dtype=np.float32).reshape(4, 4), flat)
    assert obs._pending                    # no finish(): the category failed
    obs.start("Aluminum_Ipad", 1)
    assert obs._pool is None and not obs._pending and obs._slots.acquire(blocking=False)


def test_engine_warm_up_runs_the_engine_without_failing(caplog):
    import logging

    from threecad.eval.api import _warm_up_engine

    with caplog.at_level(logging.DEBUG, logger="threecad.eval.api"):
        _warm_up_engine()
    assert "engine warm-up failed" not in caplog.text


def test_lean_warm_up_leaves_scipy_out_and_every_import_working():
    """In a process of its own (numba loads its array functions once per process): the lean
    warm-up does not load SciPy's linear algebra, while another thread imports scikit-learn
    (which imports it) at the same moment without error; numba's BLAS probe is put back, so
    ``np.dot`` compiled afterwards works; the warm-up's kernels give exact counts."""
    import subprocess
    import sys

    code = """
import sys, threading
import numpy as np
from threecad.eval.api import _warm_up_engine
errors = []
def other():
    try:
        import sklearn.metrics  # imports scipy.linalg.cython_blas
    except Exception as exc:
        errors.append(repr(exc))
t = threading.Thread(target=other)
t.start()
_warm_up_engine(True)
t.join()
assert not errors, errors
import numba.np.arraymath as arraymath, numba.np.linalg as linalg
assert arraymath.ensure_blas is linalg.ensure_blas and linalg.ensure_blas.__name__ == "ensure_blas"
from numba import njit
dot = njit(lambda a, b: np.dot(a, b))
assert dot(np.ones(3), np.ones(3)) == 3.0
from threecad.eval.metrics import roc_auc
from sklearn.metrics import roc_auc_score
rng = np.random.default_rng(0)
y, s = rng.random(5000) < 0.1, rng.random(5000).astype(np.float32)
assert abs(roc_auc(y, s) - roc_auc_score(y, s)) < 1e-12
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
    code_alone = ("import sys\nfrom threecad.eval.api import _warm_up_engine\n_warm_up_engine(True)\n"
                  "print('scipy.linalg.cython_blas' in sys.modules)")
    alone = subprocess.run([sys.executable, "-c", code_alone], capture_output=True, text=True, timeout=300)
    assert alone.stdout.strip() == "False", alone.stderr[-2000:]


def test_engine_warm_up_starts_once_per_process():
    from threecad.eval.api import start_engine_warm_up

    start_engine_warm_up()  # started here or by an earlier scoring run
    assert start_engine_warm_up() is False


def _own_positives(amap, gt):
    """The image's positives with keys, as the per-image table builds them (standard protocol)."""
    from dataclasses import replace

    from threecad.eval.engine import order_keys
    from threecad.eval.evaluate import truth_positives
    from threecad.eval.protocols import get_protocol

    pos = truth_positives(gt.astype(np.uint8), get_protocol("standard"))
    return replace(pos, keys=order_keys(amap.reshape(-1)[pos.flat_index]))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "quantised", "int32"])
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
def test_image_aupro_on_the_needed_thresholds_is_bit_identical(dtype, fpr_limit):
    """The per-image AUPRO over the thresholds down to the cut equals the one over every
    threshold exactly (==), and the brute-force definition; the cut is taken on some
    images and refused on others; the highest normal score comes with it."""
    from threecad.eval.api import aupro_positives, image_aupro, image_columns

    rng = np.random.default_rng(hash((dtype, fpr_limit)) % 2**32)
    cut_taken = 0
    for i in range(24):
        h, w = int(rng.integers(8, 90)), int(rng.integers(8, 90))
        amap = rng.random((h, w))
        if i % 3 == 0:  # anomalous pixels scored high: the lowest thresholds are not needed
            amap = amap ** 3
        gt = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 4))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            gt[max(0, y - 3):y + 4, max(0, x - 5):x + 6] = True
        amap = np.where(gt, amap + rng.uniform(0, 0.8), amap)
        if dtype == "quantised":  # many ties between normal and anomalous scores
            amap = (np.round(amap * 16) / 16).astype(np.float32)
        elif dtype == "int32":
            amap = (amap * 50).astype(np.int32)
        else:
            amap = amap.astype(dtype)
        if gt.all():
            continue
        positives = _own_positives(amap, gt)
        flat_positive = positives.flat_index
        kept = aupro_positives(positives, amap, fpr_limit)
        assert kept.n_regions == positives.n_regions and kept.regions_per_class == positives.regions_per_class
        full = image_aupro(positives, amap, flat_positive, fpr_limit=fpr_limit)
        columns = image_columns(positives, amap, flat_positive, fpr_limit=fpr_limit)
        cut_taken += columns.n_thresholds < np.unique(positives.keys).size
        assert columns.pro == full
        assert columns.max_normal_score == amap[~gt].astype(np.float64).max()
        assert full == pytest.approx(brute_aupro([amap], [gt], fpr_limit), abs=1e-9)
    if dtype == "int32" or fpr_limit == 1.0:
        assert cut_taken == 0  # integers compare as float64 in the engine; a limit of 1 needs every threshold
    else:
        assert cut_taken > 0


def test_image_aupro_cut_refused_when_the_sample_misleads():
    """A map whose sampled pixels are all high while most normal pixels are low: the cut the
    sample suggests is checked exactly and refused (every threshold kept)."""
    from threecad.eval.api import _CUT_SAMPLE, aupro_positives, image_columns

    h = w = 128
    stride = h * w // _CUT_SAMPLE
    flat = np.zeros(h * w, np.float32)
    flat[::stride] = 0.5                       # what the sample sees: 1 pixel in 8
    gt = np.zeros(h * w, bool)
    gt[1:400:3] = True                         # anomalous: spread from low to high scores
    flat[gt] = np.linspace(0.05, 1.0, gt.sum(), dtype=np.float32)
    amap, gt = flat.reshape(h, w), gt.reshape(h, w)
    positives = _own_positives(amap, gt)
    kept = aupro_positives(positives, amap, 0.3)
    assert kept.keys.size < positives.keys.size  # the sample proposes a cut...
    columns = image_columns(positives, amap, positives.flat_index, fpr_limit=0.3)
    assert columns.n_thresholds == np.unique(positives.keys).size  # ...that the count refuses
    assert columns.pro == pytest.approx(brute_aupro([amap], [gt], 0.3), abs=1e-9)
