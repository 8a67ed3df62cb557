"""``threecad verify``: re-scoring confirms a results file, or names what differs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from threecad.eval.leaderboard import score_leaderboard, write_leaderboard
from threecad.eval.synthetic import write_synthetic_submission
from threecad.eval.verify import verify_results
from threecad.cli import main
from threecad.errors import UsageError
from threecad.manifest import scan


@pytest.fixture(scope="module")
def scored(sample_root, tmp_path_factory):
    """A submission (ACC only) and its results.json, with bootstrap intervals."""
    base = tmp_path_factory.mktemp("verify")
    preds = base / "preds"
    write_synthetic_submission(scan(sample_root).manifest, preds, seed=3)
    b = score_leaderboard([str(preds)], sample_root, categories=["ACC"], n_resamples=25, seed=2, workers=2,
                          command=["threecad", "leaderboard"])
    write_leaderboard(b, base / "lb")
    return preds, base / "lb" / b.entries[0].slug / "results.json"


def test_verify_confirms_its_own_results(scored, sample_root, capsys):
    preds, results = scored
    report = verify_results(results, preds, sample_root, workers=2)
    assert report.ok and report.n_values > 50
    rc = main(["verify", str(results), str(preds), "--data-root", str(sample_root), "--no-progress"])
    assert rc == 0
    assert "verified" in capsys.readouterr().out


def test_verify_names_a_changed_number(scored, sample_root, tmp_path):
    preds, results = scored
    obj = json.loads(results.read_text())
    folder = next(iter(obj["categories"]))
    obj["categories"][folder]["pixel_auroc"] += 1e-9
    obj["bootstrap"]["categories"][folder]["aupro"]["low"] = 0.0
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(obj))
    report = verify_results(bad, preds, sample_root, workers=2)
    assert not report.ok
    text = "\n".join(report.differences)
    assert f"categories.{folder}.pixel_auroc" in text
    assert f"bootstrap.categories.{folder}.aupro.low" in text
    assert len(report.differences) == 2


def test_verify_names_a_changed_map(scored, sample_root, tmp_path, capsys):
    preds, results = scored
    copy = tmp_path / "preds"
    shutil.copytree(preds, copy)
    victim = sorted((copy / "Aluminum_Camera_Cover").rglob("*.npy"))[0]
    a = np.load(victim)
    np.save(victim, (a * 0.5).astype(a.dtype))  # same order of values: metrics may agree, the file does not
    rc = main(["verify", str(results), str(copy), "--data-root", str(sample_root), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "NOT verified" in out
    assert victim.relative_to(copy).as_posix() in out
    assert "submission.digest" in out


def test_verify_refuses_a_file_that_is_not_results(tmp_path, sample_root, scored):
    preds, _ = scored
    junk = tmp_path / "x.json"
    junk.write_text("{not json")
    with pytest.raises(UsageError, match="not JSON"):
        verify_results(junk, preds, sample_root)
    junk.write_text(json.dumps({"a": 1}))
    with pytest.raises(UsageError, match="not a threecad results.json"):
        verify_results(junk, preds, sample_root)


def test_readme_verify_runs_without_data_root(sample_root, tmp_path, capsys, monkeypatch):
    """``threecad verify board/a/results.json a/``: the board folder is named after the entry and the
    ground truth recorded in results.json is used when no --data-root is given."""
    monkeypatch.delenv("THREECAD_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "nowhere"))
    a = tmp_path / "a"
    write_synthetic_submission(scan(sample_root).manifest, a, seed=4)
    assert main(["leaderboard", str(a), "--data-root", str(sample_root), "--categories", "CS",
                 "--out", str(tmp_path / "board"), "--no-progress"]) == 0
    capsys.readouterr()
    results = tmp_path / "board" / "a" / "results.json"
    assert json.loads(results.read_text())["ground_truth"]["data_root"] == str(sample_root.resolve())
    rc = main(["verify", str(results), str(a), "--no-progress"])
    assert rc == 0, capsys.readouterr()
    assert "verified" in capsys.readouterr().out
    obj = json.loads(results.read_text())
    obj["ground_truth"]["data_root"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(obj))
    with pytest.raises(UsageError, match="no dataset at"):
        verify_results(moved, a)
    assert main(["verify", str(moved), str(a), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no dataset at" in err and "--data-root" in err and "Traceback" not in err
