"""The CLI end to end, through subprocesses (as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from threecad.categories import CATEGORIES
from tests.conftest import box_mask

HEAVY = ("torch", "fiftyone", "numba", "torchvision")


def run(*args, check_rc: int | None = 0, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "threecad", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def loaded_modules(argv: list[str]) -> set[str]:
    """Top-level modules imported by running the CLI in-process with ``argv``."""
    code = (
        "import sys, json\n"
        "from threecad.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stdout.write('\\nMODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    return set(json.loads(out.rsplit("MODULES ", 1)[1]))


def test_help_imports_nothing_heavy():
    mods = loaded_modules(["--help"])
    assert not mods & {*HEAVY, "pandas", "cv2", "matplotlib", "numpy", "PIL"}, mods


def test_stats_never_imports_torch_or_fiftyone(sample_root):
    mods = loaded_modules(["stats", str(sample_root), "--format", "json"])
    assert "pandas" in mods  # the command really ran
    assert not mods & set(HEAVY), mods


def test_help_of_every_command():
    for cmd in ("stats", "sample", "demo"):
        assert cmd in run(cmd, "--help").stdout
    assert run("--version").stdout.startswith("threecad ")
    assert run(check_rc=2).stdout.startswith("usage:")


def test_stats_json_reproduces_the_sample(sample_root, sample_truth):
    out = json.loads(run("stats", sample_root, "--format", "json").stdout)
    assert set(out["categories"]) == {c.folder for c in CATEGORIES}
    for cat in CATEGORIES:
        got = out["categories"][cat.folder]
        want = sample_truth.counts(cat.code)
        for key, value in want.items():
            assert got[key] == (list(value) if isinstance(value, tuple) else value), (cat.code, key)
    assert out["total"]["defect_types"] == 47
    assert out["total"]["train"] == sum(1 for i in sample_truth.images if i.split == "train")


def test_stats_table_csv_markdown(sample_root):
    table = run("stats", sample_root).stdout
    for cat in CATEGORIES:
        assert cat.code in table and cat.folder in table
    assert table.splitlines()[-1].startswith("all")
    csv_text = run("stats", sample_root, "--format", "csv").stdout
    assert len(csv_text.strip().splitlines()) == 1 + 8 + 1
    md = run("stats", sample_root, "--format", "markdown", "--categories", "CS", "IS").stdout
    assert md.count("\n") == 2 + 2 + 1 and "Copper_Stator" in md and "Aluminum_Ipad" not in md


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_per_image_tables(sample_root, sample_truth, tmp_path, suffix):
    target = tmp_path / f"stats{suffix}"
    run("stats", sample_root, "--per-image", target)
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    images = read(target)
    regions = read(tmp_path / f"stats.regions{suffix}")
    assert len(images) == len(sample_truth.images)
    assert len(regions) == sum(i.n_regions for i in sample_truth.images)
    by_id = images.set_index("image_id")
    for img in sample_truth.images:
        if img.types:
            key = f"{img.category}/test/{img.folder}/{img.stem}"
            assert by_id.loc[key, "n_regions"] == img.n_regions, key
    assert set(regions["size_class"]) <= {"small", "medium", "large"}
    assert not list(tmp_path.glob(".*part"))


def test_plots(sample_root, tmp_path):
    proc = run("stats", sample_root, "--plots", tmp_path / "plots", "--format", "json")
    json.loads(proc.stdout)  # stdout stays clean JSON
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["defect_types.png", "region_areas.png", "regions_per_image.png"]
    for name in names:
        with Image.open(tmp_path / "plots" / name) as im:
            assert im.width > 800 and im.height > 400


def test_compare_published_on_the_sample_differs(sample_root):
    proc = run("stats", sample_root, "--compare-published", check_rc=1)
    assert "Differences from the published table" in proc.stdout
    assert "ACC train: tree" in proc.stdout
    out = json.loads(run("stats", sample_root, "--compare-published", "--format", "json", check_rc=1).stdout)
    assert any(d["category"] == "AP" and d["field"] == "test" for d in out["differences_from_published"])


def test_usage_errors_exit_2(tmp_path, sample_root):
    proc = run("stats", tmp_path / "missing", check_rc=2)
    assert "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    assert "not a 3CAD tree" in run("stats", tmp_path / "empty", check_rc=2).stderr
    assert "unknown 3CAD category 'Bottle'" in run("stats", sample_root, "--categories", "Bottle",
                                                   check_rc=2).stderr
    assert ".parquet or .csv" in run("stats", sample_root, "--per-image", tmp_path / "x.xlsx",
                                     check_rc=2).stderr
    assert "invalid choice" in run("stats", sample_root, "--format", "xml", check_rc=2).stderr
    bad_map = tmp_path / "map.csv"
    bad_map.write_text("nope\n")
    assert str(bad_map) in run("stats", sample_root, "--label-map", bad_map, check_rc=2).stderr


def test_data_errors_exit_1_and_list_every_problem(tree):
    ai = "Aluminum_Ipad"
    tree.defect(ai, "scratch", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    tree.mask(ai, "scratch", "000099", box_mask((40, 60), (0, 0, 3, 3)))
    tree.image(ai, "test", "dent", "000002")
    broken = tree.root / ai / "train" / "good" / "000003.png"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"broken")
    proc = run("stats", tree.root, check_rc=1)
    for needle in ("000099.png", "mask_without_image", "missing_mask", "000002.png",
                   "unreadable_image", "000003.png", "3 errors"):
        assert needle in proc.stderr, needle
    assert proc.stdout == ""


def test_unknown_label_is_warned_by_name(tree):
    tree.defect("Aluminum_Ipad", "qiguai", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    proc = run("stats", tree.root)
    assert "qiguai" in proc.stderr and "warning" in proc.stderr.lower()
    assert "qiguai" not in proc.stdout  # the table counts types; names are in --per-image


def test_sample_command_and_refusing_to_overwrite(tmp_path):
    out = tmp_path / "s"
    run("sample", out, "--categories", "CS", "--seed", "3")
    assert (out / "Copper_Stator" / "train" / "good").is_dir()
    assert "choose a new folder" in run("sample", out, check_rc=2).stderr


def test_pinyin_sample_scans_to_the_same_english_types(tmp_path):
    run("sample", tmp_path / "en", "--categories", "ACC", "IS")
    run("sample", tmp_path / "py", "--categories", "ACC", "IS", "--names", "pinyin")
    run("stats", tmp_path / "en", "--per-image", tmp_path / "en.parquet")
    proc = run("stats", tmp_path / "py", "--per-image", tmp_path / "py.parquet")
    assert "warning" not in proc.stderr.lower()
    key = ["category", "split", "stem"]
    en = pd.read_parquet(tmp_path / "en.parquet").set_index(key)
    py = pd.read_parquet(tmp_path / "py.parquet").set_index(key)
    cols = ["label", "defect_type", "n_types", "n_regions", "height", "width"]
    pd.testing.assert_frame_equal(en[cols].sort_index(), py[cols].sort_index())
    assert en["defect_types"].map(tuple).sort_index().tolist() == \
        py["defect_types"].map(tuple).sort_index().tolist()
    assert set(py.loc[py["label"] == "defect", "folder"]).isdisjoint(set(en["folder"]))


def test_demo_builds_once_then_reuses(tmp_path):
    first = run("demo", "--cache-dir", tmp_path / "cache")
    assert "building the sample" in first.stderr
    assert "fitting the training-free PatchKNN baseline" in first.stderr
    assert "PatchKNN (training-free baseline)" in first.stdout
    for cat in CATEGORIES:
        assert cat.code in first.stdout
    second = run("demo", "--cache-dir", tmp_path / "cache")
    assert "using the cached sample" in second.stderr
    assert first.stdout == second.stdout


def test_eval_never_imports_torch_or_fiftyone(sample_root, tmp_path):
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.manifest import scan

    preds = write_synthetic_submission(scan(sample_root, categories=["CS"]).manifest, tmp_path / "p")
    mods = loaded_modules(["eval", str(preds), "--data-root", str(sample_root)])
    assert "numba" in mods  # the command really scored
    assert not mods & {"torch", "fiftyone", "torchvision"}, mods
