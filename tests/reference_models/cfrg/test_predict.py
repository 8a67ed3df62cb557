"""Prediction writes a submission that ``threecad eval`` accepts; the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from threecad.reference_models.cfrg.checkpoint import file_sha256
from threecad.reference_models.cfrg.predict import find_checkpoints, predict_submission
from threecad.reference_models.cfrg.train import Trainer
from threecad.errors import UsageError
from threecad.manifest import load_manifest

CPU = torch.device("cpu")


def test_predict_writes_a_submission_that_eval_accepts(tiny_config, cs_train_rows, sample_root, tmp_path):
    from threecad.commands.eval import score_submission

    run = Trainer(tmp_path / "run" / "Copper_Stator", tiny_config, device=CPU,
                  teacher_info={"source": "none (untrained)", "pretrained": False}, workers=0,
                  category="Copper_Stator").fit(cs_train_rows, max_steps=1)
    manifest = load_manifest(sample_root, categories=["CS"])
    ckpts = find_checkpoints(tmp_path / "run", ["Copper_Stator"])
    assert ckpts == {"Copper_Stator": run.model_path}
    preds = predict_submission(manifest, ckpts, tmp_path / "preds", device=CPU, batch_size=2, workers=0)
    test = manifest[manifest["split"] == "test"]
    maps = sorted(preds.rglob("*.npy"))
    assert len(maps) == len(test)
    amap = np.load(maps[0], allow_pickle=False)
    assert amap.dtype == np.float16 and amap.shape == (64, 64) and np.isfinite(amap).all()
    meta = json.loads((preds / "submission.json").read_text())
    assert meta["format_version"] == 1 and meta["model"] == "cfrg"
    assert "UNTRAINED TEACHER" in meta["method"]
    assert meta["config"]["image_size"] == 64
    assert meta["checkpoints"]["Copper_Stator"]["sha256"] == file_sha256(run.model_path)
    scores = (preds / "scores.csv").read_text().splitlines()
    assert scores[0] == "image,score" and len(scores) == 1 + len(test)
    results = score_submission(preds, sample_root, categories=["CS"])
    assert results["categories"]["Copper_Stator"]["n_images"] == len(test)
    assert 0.0 <= results["categories"]["Copper_Stator"]["pixel_auroc"] <= 1.0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    with pytest.raises(UsageError, match="no model.pt for Iron_Stator"):
        find_checkpoints(tmp_path / "run", ["Copper_Stator", "Iron_Stator"])


def _cli(*args, check_rc=0):
    proc = subprocess.run([sys.executable, "-m", "threecad", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_train_predict_eval(sample_root, tmp_path):
    runs, preds = tmp_path / "runs", tmp_path / "preds"
    proc = _cli("train", "--model", "cfrg", "--data-root", sample_root, "--category", "CS", "--image-size", "64",
                "--batch-size", "3", "--max-steps", "1", "--teacher-weights", "none", "--device", "cuda",
                "--workers", "0", "--out", runs)
    if not torch.cuda.is_available():
        assert "CUDA was asked for" in proc.stderr and "running on the CPU" in proc.stderr
    assert "untrained teacher" in proc.stderr and "procedural textures" in proc.stderr
    assert "keeps the last model" in proc.stderr
    assert (runs / "Copper_Stator" / "model.pt").is_file() and (runs / "Copper_Stator" / "last.pt").is_file()
    again = _cli("train", "--data-root", sample_root, "--category", "CS", "--out", runs, "--device", "cpu",
                 "--teacher-weights", "none", check_rc=2)
    assert "--resume" in again.stderr
    _cli("predict", "--model", "cfrg", "--weights", runs, "--data-root", sample_root, "--out", preds,
         "--device", "cpu", "--workers", "0", "--batch-size", "4")
    assert (preds / "submission.json").is_file()
    out = _cli("eval", preds, "--data-root", sample_root, "--json").stdout
    assert "Copper_Stator" in json.loads(out)["categories"]
    missing = _cli("predict", "--model", "cfrg", "--data-root", sample_root, "--out", tmp_path / "p2", check_rc=2)
    assert "--weights" in missing.stderr


def test_cli_refuses_a_pickle_with_code(sample_root, tmp_path):
    import pickle

    from tests.reference_models.cfrg.test_checkpoint import _Payload

    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "threecad-cfrg", "x": _Payload(marker)}))
    proc = _cli("predict", "--weights", evil, "--categories", "CS", "--data-root", sample_root,
                "--out", tmp_path / "p", "--device", "cpu", check_rc=1)
    assert "refused" in proc.stderr and str(evil) in proc.stderr
    assert not marker.exists() and not (tmp_path / "p").exists()


def test_cli_all_categories_trains_one_model_each_and_predicts_them(tmp_path):
    root, runs, preds = tmp_path / "two", tmp_path / "runs", tmp_path / "preds"
    _cli("sample", root, "--categories", "CS", "IS")
    _cli("train", "--data-root", root, "--all-categories", "--image-size", "64", "--batch-size", "2",
         "--max-steps", "1", "--teacher-weights", "none", "--device", "cpu", "--workers", "0", "--out", runs)
    assert sorted(p.parent.name for p in runs.glob("*/model.pt")) == ["Copper_Stator", "Iron_Stator"]
    _cli("predict", "--model", "cfrg", "--weights", runs, "--data-root", root, "--out", preds, "--device", "cpu",
         "--workers", "0", "--batch-size", "4")
    meta = json.loads((preds / "submission.json").read_text())
    assert sorted(meta["checkpoints"]) == ["Copper_Stator", "Iron_Stator"]
    out = json.loads(_cli("eval", preds, "--data-root", root, "--json").stdout)
    assert sorted(out["categories"]) == ["Copper_Stator", "Iron_Stator"]


def test_cli_names_a_checkpoint_without_its_config_or_with_wrong_types(sample_root, tmp_path):
    weights = {"w": torch.ones(2)}
    bad = {"no_config.pt": {"format": "threecad-cfrg", "teacher": weights, "model": weights},
           "bad_types.pt": {"format": "threecad-cfrg", "config": {"image_size": "big", "betas": 0.5},
                            "teacher": weights, "model": [1, 2], "epoch": "3"}}
    for name, payload in bad.items():
        path = tmp_path / name
        torch.save(payload, path)
        proc = _cli("predict", "--model", "cfrg", "--weights", path, "--categories", "CS", "--data-root", sample_root,
                    "--out", tmp_path / f"p-{name}", "--device", "cpu", check_rc=1)
        assert str(path) in proc.stderr and "not a usable CFRG checkpoint" in proc.stderr
        assert not (tmp_path / f"p-{name}").exists()
    err = proc.stderr  # the second file: every problem named at once
    assert "'image_size'" in err and "'betas'" in err and "'model'" in err and "'epoch'" in err
    nameless = tmp_path / "nameless.pt"
    torch.save({"format": "threecad-cfrg", "teacher": weights, "model": weights}, nameless)
    proc = _cli("predict", "--model", "cfrg", "--weights", nameless, "--data-root", sample_root,
                "--out", tmp_path / "p", "--device", "cpu", check_rc=1)
    assert str(nameless) in proc.stderr and "no 'config'" in proc.stderr
