"""The CLI end to end, through subprocesses (as a user runs it)."""

from __future__ import annotations

import json
import os
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


# --- usage errors: every number and path option is checked by the parser (issue 14, class 8) ----

def parse_error(argv: list[str], capsys) -> str:
    """Parse ``argv`` in process; assert exit 2 and one stderr line; return that line."""
    from threecad.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2, argv
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err
    return lines[0]


def test_reported_usage_examples_are_one_line_errors(tmp_path, sample_root, capsys):
    existing_file = tmp_path / "results"
    existing_file.write_text("x")
    latin1 = tmp_path / "map.csv"
    latin1.write_bytes("pinyin,english\nhuahen,scratch \xe9\n".encode("latin-1"))
    cases = [
        (["eval", tmp_path, "--data-root", sample_root, "--out", existing_file], "--out", "is not a folder"),
        (["eval", tmp_path, "--data-root", sample_root, "--scheduler", "notaurl"], "--scheduler", "Dask"),
        (["sample", tmp_path / "s", "--seed", "-1"], "--seed", "from 0 to"),
        (["stats", sample_root, "--workers", "-3"], "--workers", "--threads"),
        (["stats", sample_root, "--label-map", latin1], "--label-map", "not UTF-8"),
        (["stats", sample_root, "--threads", "0"], "--threads", ">= 1"),
        (["stats", sample_root, "--threads", "-1"], "--threads", ">= 1"),
        (["eval", tmp_path, "--data-root", sample_root, "--threads", "-1"], "--threads", ">= 1"),
        (["stats", sample_root, "--categories", ""], "--categories", "empty"),
        (["validate", sample_root, "--categories", "ACC,,AI"], "--categories", "empty name"),
        (["stats", sample_root, "--categories", "Bottle"], "--categories", "unknown 3CAD category 'Bottle'"),
        (["download", "--url", "http://[::1/x.zip"], "--url", "http"),
        (["split", sample_root, "--shots", "1,x"], "--shots", "1,2,4,8"),
        (["split", sample_root, "--val-fraction", "1"], "--val-fraction", "[0, 1)"),
        (["leaderboard", tmp_path, "--confidence", "1.5"], "--confidence", "between 0 and 1"),
        (["view", sample_root, "--port", "70000"], "--port", "1 to 65535"),
        (["train", "--image-size", "100"], "--image-size", "multiple of 16"),
        (["stats", tmp_path / "missing"], "ROOT", "does not exist"),
        (["stats", existing_file], "ROOT", "is not a folder"),
    ]
    for argv, option, needle in cases:
        line = parse_error(argv, capsys)
        assert f"argument {option}" in line and needle in line, (argv, line)


# Values each typed option must refuse, by the name of its type function.
BAD_VALUES = {
    "positive_int": ["0", "-1", "x", "1.5", ""],
    "non_negative_int": ["-1", "x", "2.0", ""],
    "seed_value": ["-1", str(2**32), "x"],
    "positive_float": ["0", "-1", "nan", "inf", "x", ""],
    "open_unit_interval": ["0", "1", "-0.5", "nan", "x"],
    "fraction": ["1", "-0.1", "nan", "x"],
    "port_number": ["0", "-1", "65536", "x"],
    "image_side": ["0", "-16", "17", "x"],
}


def _commands():
    import argparse

    from threecad.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _minimal_argv(name: str, root: Path, tmp: Path) -> list[str]:
    """Valid positionals (and required options) for command ``name``."""
    return {"stats": [root], "validate": [root], "split": [root], "view": [root], "sample": [tmp / "new"],
            "eval": [tmp], "leaderboard": [tmp], "verify": [root / "results.json", tmp],
            "predict": ["--out", tmp / "preds"]}.get(name, [])


def test_every_numeric_option_of_every_command_refuses_0_negative_and_garbage(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    (root / "results.json").write_text("{}")
    swept = 0
    for name, sub in _commands().items():
        base = [name, *_minimal_argv(name, root, tmp_path)]
        for action in sub._actions:
            assert action.type not in (int, float), f"{name} {action.option_strings}: untyped number"
            bad = BAD_VALUES.get(getattr(action.type, "__name__", ""))
            if not bad or not action.option_strings:
                continue
            option = action.option_strings[-1]
            for value in bad:
                line = parse_error([*base, f"{option}={value}"], capsys)
                assert f"argument {option}" in line and repr(value) in line, (name, option, value, line)
                swept += 1
    assert swept > 80  # every command's numbers were reached


PATH_METAVARS = {"ROOT", "DIR", "FILE", "OUT", "PREDS", "CKPT", "RESULTS"}


def test_every_path_option_is_typed(tmp_path):
    for name, sub in _commands().items():
        for action in sub._actions:
            if action.metavar in PATH_METAVARS or action.dest in ("root", "out", "preds", "results", "submission"):
                assert action.type is not None, (name, action.dest)


def test_path_options_refuse_files_for_folders_and_folders_for_files(tmp_path, sample_root, capsys):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (["stats", sample_root, "--plots", a_file], "--plots", "is not a folder"),
        (["stats", sample_root, "--per-image", tmp_path], "--per-image", "format"),
        (["stats", sample_root, "--per-image", tmp_path / "x.xlsx"], "--per-image", ".parquet or .csv"),
        (["stats", sample_root, "--per-image", a_file / "x.csv"], "--per-image", "is not a folder"),
        (["stats", sample_root, "--label-map", fifo], "--label-map", "not a regular file"),
        (["stats", sample_root, "--label-map", tmp_path], "--label-map", "not a regular file"),
        (["sample", a_file], "OUT", "is not a folder"),
        (["download", "--archive", tmp_path / "none.zip"], "--archive", "does not exist"),
        (["download", "--archive", fifo], "--archive", "not a regular file"),
        (["download", "--dest", a_file], "--dest", "is not a folder"),
        (["download", "--sha256", "abc"], "--sha256", "64 hexadecimal"),
        (["view", sample_root, "--validation-report", tmp_path], "--validation-report", "not a regular file"),
        (["view", sample_root, "--preds", a_file], "--preds", "is not a folder"),
        (["verify", tmp_path, tmp_path], "RESULTS", "not a regular file"),
        (["eval", tmp_path / "none"], "PREDS", "does not exist"),
        (["eval", tmp_path, "--data-root", a_file], "--data-root", "is not a folder"),
        (["train", "--splits", tmp_path / "none.json"], "--splits", "does not exist"),
        (["train", "--teacher-weights", tmp_path / "none.pt"], "--teacher-weights", "does not exist"),
        (["predict", "--out", a_file], "--out", "is not a folder"),
        (["demo", "--cache-dir", a_file], "--cache-dir", "is not a folder"),
    ]
    for argv, option, needle in cases:
        line = parse_error(argv, capsys)
        assert f"argument {option}" in line and needle in line, (argv, line)


def test_one_meaning_per_option_across_commands():
    """--categories, --threads, --workers, --no-progress and --seed are the same option everywhere."""
    from threecad import cli_options as opt

    seen: dict[str, set] = {}
    for name, sub in _commands().items():
        options = {s: a for a in sub._actions for s in a.option_strings}
        assert "--no-progress" in options, name  # every command reports progress the same way
        for flag in ("--categories", "--threads", "--seed", "--label-map", "--data-root"):
            if flag in options:
                seen.setdefault(flag, set()).add((options[flag].type, options[flag].help))
        workers = options.get("--workers")
        if workers is not None and workers.help != "==SUPPRESS==":
            assert "processes" in workers.help, (name, workers.help)  # never threads
    for flag, variants in seen.items():
        types = {t for t, _ in variants}
        assert len(types) == 1, (flag, variants)
    assert {t for t, _ in seen["--categories"]} == {opt.category_names}
    assert len({h for _, h in seen["--label-map"]}) == 1


def test_categories_are_parsed_the_same_way_everywhere(sample_root):
    from threecad.cli import build_parser

    parser = build_parser()
    argvs = {
        "stats": ["stats", str(sample_root)], "validate": ["validate", str(sample_root)],
        "split": ["split", str(sample_root)], "view": ["view", str(sample_root)],
        "sample": ["sample", "new"], "eval": ["eval", str(sample_root)],
        "leaderboard": ["leaderboard", "x"], "predict": ["predict", "--out", "p"],
    }
    for name, argv in argvs.items():
        for words in (["CS,IS"], ["CS", "IS"], ["cs", "Iron_Stator", "CS"], ["Copper_Stator,IS"]):
            args = parser.parse_args([*argv, "--categories", *words])
            assert args.categories == ["Copper_Stator", "Iron_Stator"], (name, words, args.categories)
        assert parser.parse_args(argv).categories is None


def test_stats_accepts_comma_separated_categories_end_to_end(sample_root):
    out = json.loads(run("stats", sample_root, "--categories", "CS,IS", "--json").stdout)
    assert set(out["categories"]) == {"Copper_Stator", "Iron_Stator"}


# --- progress: bars on a terminal, log lines without one (issue 15, item 3) ---------------------

def test_sample_reports_progress_lines_without_a_terminal(tmp_path):
    env = {**os.environ, "THREECAD_PROGRESS_INTERVAL": "0"}
    env.pop("THREECAD_PROGRESS", None)
    proc = run("sample", tmp_path / "s", "--categories", "CS", env=env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("threecad: sample:")]
    assert lines and "img/s" in lines[0] and "/8 img" in lines[0], proc.stderr
    assert lines[-1].startswith("threecad: sample: done, 8 img")
    quiet = run("sample", tmp_path / "q", "--categories", "CS", "--no-progress", env=env)
    assert "threecad: sample" not in quiet.stderr


def test_eval_reports_each_phase_without_a_terminal(sample_root, tmp_path):
    from threecad.eval.synthetic import write_synthetic_submission
    from threecad.manifest import scan

    preds = write_synthetic_submission(scan(sample_root, categories=["CS"]).manifest, tmp_path / "p")
    env = {**os.environ, "THREECAD_PROGRESS_INTERVAL": "0"}
    env.pop("THREECAD_PROGRESS", None)
    proc = run("eval", preds, "--data-root", sample_root, env=env)
    phases = {ln.split(":")[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("threecad: ")
              and ("/s," in ln or ": done," in ln)}
    assert {"CS read", "CS count"} <= phases, proc.stderr  # both passes of the scoring, each named
    assert "\r" not in proc.stderr  # no bar drawn into a log


def _entry_point_with(body: str, *args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """Run the console-script entry point in a child whose ``main`` is ``body`` (a function of ``argv``)."""
    code = ("import atexit, sys, threading, time\n"
            "from threecad import cli\n"
            f"{body}\n"
            "cli.main = main\n"
            "cli.entry_point()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output waits in buffers
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          env=env, timeout=120)


def test_the_entry_point_runs_exit_handlers_and_flushes_everything_before_it_leaves(tmp_path):
    marker = tmp_path / "handler-ran"
    body = ("def main():\n"
            "    atexit.register(lambda: open(sys.argv[1], 'w').write('ran'))\n"
            "    sys.stdout.write('x' * 300_000)\n"
            "    sys.stderr.write('y' * 1_000)\n"
            "    return 3\n")
    proc = _entry_point_with(body, str(marker))
    assert proc.returncode == 3
    assert proc.stdout == "x" * 300_000 and proc.stderr == "y" * 1_000
    assert marker.read_text() == "ran"


def test_the_entry_point_waits_for_a_thread_that_still_runs(tmp_path):
    marker = tmp_path / "thread-done"
    body = ("def late():\n"
            "    time.sleep(0.3)\n"
            "    open(sys.argv[1], 'w').write('done')\n"
            "def main():\n"
            "    threading.Thread(target=late).start()\n"
            "    return 0\n")
    proc = _entry_point_with(body, str(marker))
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "done"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_the_entry_point_exits_120_when_the_last_flush_fails():
    body = "def main():\n    print('result')\n    return 0\n"
    with open("/dev/full", "w") as full:
        proc = _entry_point_with(body, stdout=full)
    assert proc.returncode == 120
