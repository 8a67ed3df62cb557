"""Result files: one set published with one rename (never a mix after an interruption), the umask's
permissions, folders that are not result sets left alone, tables rendered as Markdown or text."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from threecad.errors import UsageError
from threecad.eval.metric_names import METRICS
from threecad.eval.protocols import get_protocol
from threecad.eval.results import (IMAGE_TABLES, RESULT_FILES, CategoryResult, ImageResult, Results, Table,
                                   write_results)

SET = sorted((*RESULT_FILES, *IMAGE_TABLES))


def make_results(method: str = "m", value: float = 0.5) -> Results:
    """A small results object (two images of one category), no scoring needed."""
    values = {m.value: value for m in METRICS} | {"n_images": 2, "n_defective": 1, "n_regions": 1, "n_pixels": 8}
    cat = CategoryResult("Aluminum_Ipad", "AI", dict(values),
                         {"dent": dict(values)}, {"small": {"aupro": value, "n_regions": 1}})
    images = [ImageResult("Aluminum_Ipad/test/dent/000001", "AI", ("dent",), 1, 0.9, 0.8, 0.4, 0.9, 3, 1, 2, 4,
                          "Aluminum_Ipad/test/dent/000001.npy"),
              ImageResult("Aluminum_Ipad/test/good/000002", "AI", (), 0, 0.1, float("nan"), 0.1, float("nan"), 0, 0,
                          2, 4, "Aluminum_Ipad/test/good/000002.npy")]
    return Results(protocol=get_protocol("standard").to_dict(), method=method, team=None,
                   submission_digest="0" * 64, files={"a.npy": "1" * 64}, ground_truth_sha256="2" * 64,
                   data_root="/data", command=["threecad", "eval"], created="2026-01-01T00:00:00+00:00",
                   categories={"Aluminum_Ipad": cat}, mean={m.value: value for m in METRICS} | {"n_categories": 1},
                   images=images)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_set_is_written_whole_with_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        paths = write_results(make_results(), tmp_path / "out")
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert sorted(p.name for p in paths) == SET == sorted(p.name for p in out.iterdir())
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p.name
    frame = pd.read_parquet(out / "images.parquet")
    assert list(frame.columns) == list(ImageResult.COLUMNS) and len(frame) == 2
    assert list(frame["defect_types"][0]) == ["dent"]
    csv = pd.read_csv(out / "images.csv")
    assert csv["defect_types"][0] == "dent" and csv["image_id"][1].endswith("good/000002")
    assert json.loads((out / "results.json").read_text())["method"] == "m"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_error_inside_the_write_leaves_the_old_set_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_results(make_results("first", 0.5), out)
    before = snapshot(out)

    def boom(self):
        raise OSError("disk full")  # after results.json/.csv/.md are in the temporary folder

    monkeypatch.setattr(Results, "image_frame", boom)
    with pytest.raises(OSError, match="disk full"):
        write_results(make_results("second", 0.7), out)
    assert snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temporary folder is gone


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from tests.eval.test_results import make_results
from threecad.eval.results import Results, write_results

def die(self):
    os.kill(os.getpid(), signal.SIGKILL)   # kill -9 between the files of the set

Results.image_frame = die
write_results(make_results("second", 0.7), Path(sys.argv[1]))
"""


def test_kill_9_between_files_never_leaves_a_mixed_set(tmp_path):
    out = tmp_path / "out"
    write_results(make_results("first", 0.5), out)
    before = snapshot(out)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out)], cwd=root, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(out) == before                          # the old set, whole
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert left and all(p.name.endswith(".tmpdir") for p in left)  # the killed run's temporary folder
    old = time.time() - 2 * 3600
    for p in left:
        os.utime(p, (old, old))
    write_results(make_results("third", 0.9), out)           # the next run sweeps it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert json.loads((out / "results.json").read_text())["method"] == "third"


def test_a_folder_with_other_files_is_not_replaced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="notes.txt") as err:
        write_results(make_results(), out)
    assert "--" not in str(err.value)
    assert (out / "notes.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        write_results(make_results(), tmp_path / "file")


def test_cli_out_on_a_file_is_a_one_line_usage_error(tmp_path, sample_root):
    from threecad.cli import main

    (tmp_path / "file").write_text("x")
    (tmp_path / "preds").mkdir()
    proc = subprocess.run([sys.executable, "-m", "threecad", "eval", str(tmp_path / "preds"), "--data-root",
                           str(sample_root), "--out", str(tmp_path / "file")], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "file").read_text() == "x"
    del main


def test_tables_render_as_markdown_or_aligned_text():
    t = Table("Title", ["Method", "A", "Mean"], [["x", "\x001.0\x00/2.0", "3.0"], ["long name", "10.0/20.0", "-"]],
              mark_note="the best.")
    md = t.to_markdown()
    assert "| x | **1.0**/2.0 | 3.0 |" in md and "|---|---:|---:|" in md and "Bold: the best." in md
    text = t.to_text()
    assert "**" not in text and "|" not in text and "*: the best." in text
    lines = text.splitlines()
    assert lines[0] == "Title"
    assert len({len(ln) for ln in lines[1:4]}) == 1 or lines[3].endswith("-")  # right-aligned numbers
    assert lines[2].split() == ["x", "1.0*/2.0", "3.0"]
    assert lines[1].index("Mean") + len("Mean") == lines[2].index("3.0") + len("3.0")


def test_results_markdown_and_terminal_text():
    r = make_results()
    md = r.to_markdown()
    assert md.startswith("# m\n") and "| AI | dent | 2 | 1 |" in md and "| AI | small | 1 | 50.0 |" in md
    assert "**P-AUROC/P-AP (percent; protocol standard)**" in md
    text = r.to_text()
    assert "**" not in text and "50.0/50.0" in text
