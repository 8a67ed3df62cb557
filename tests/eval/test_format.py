"""threecad.eval.format: the one source of the submission format, read back by the loader."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.eval.test_submission import _test_rows, manifest  # noqa: F401
from threecad.errors import BadFileError
from threecad.eval import format as fmt
from threecad.eval.submission import load_submission


def test_what_the_format_helpers_write_the_loader_reads(tmp_path, manifest):
    out = tmp_path / "m"
    scores = {}
    for k, row in enumerate(_test_rows(manifest).itertuples()):
        path = out / fmt.map_relpath(row.category, row.folder, row.stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.full((8, 10), k, np.float32))
        scores[fmt.image_key(row.category, row.folder, row.stem)] = k / 7
    (out / fmt.SCORES_FILE).write_text(fmt.scores_csv_text(scores))
    (out / fmt.META_FILE).write_text(fmt.meta_json_text(fmt.meta_record("m1", team="t", seed=3)))
    sub = load_submission(out, manifest)
    assert sub.scores == scores  # repr() keeps every float exactly
    assert (sub.meta.method, sub.meta.team, sub.meta.extra) == ("m1", "t", {"seed": 3})
    assert json.loads((out / fmt.META_FILE).read_text())["format_version"] == fmt.FORMAT_VERSION
    with pytest.raises(ValueError):
        fmt.meta_record("m", format_version=2)
    with pytest.raises(ValueError):
        fmt.map_relpath("c", "f", "s", ".jpg")


@pytest.mark.parametrize("name, expected", [
    ("PatchCore", "PatchCore"), ("a b/c", "a_b_c"), ("../..", "method"), ("", "method"), (".hidden", "hidden"),
    ("caf\u00e9", "caf"),
])
def test_safe_file_name(name, expected):
    assert fmt.safe_file_name(name) == expected


def test_safe_file_name_of_long_names_is_short_and_distinct():
    a, b = fmt.safe_file_name("x" * 400 + "a"), fmt.safe_file_name("x" * 400 + "b")
    assert len(a) <= 64 and len(b) <= 64 and a != b and a.startswith("xxx")


def test_safe_cell():
    assert fmt.safe_cell("a | b\nc\td") == "a \\| b c d"
    cell = fmt.safe_cell("y" * 500)
    assert len(cell) == 80 and cell.endswith("\u2026")
    assert fmt.shown("a\udcffb") == "a\\udcffb"


@pytest.mark.parametrize("text, deep", [
    ("[" * 33 + "]" * 33, True), ("[" * 32 + "]" * 32, False), ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', False),
    ('["\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', False),
])
def test_json_depth_exceeds(text, deep):
    assert fmt.json_depth_exceeds(text, 32) is deep


def test_open_regular_refuses_fifo_and_big_files(tmp_path):
    os.mkfifo(tmp_path / "p")
    with pytest.raises(BadFileError, match=r"not a regular file \(a named pipe") as info:
        fmt.open_regular(tmp_path / "p", "bad_scores")
    assert info.value.kind == fmt.NOT_REGULAR_FILE
    (tmp_path / "f").write_bytes(b"12345")
    with pytest.raises(BadFileError, match="more than the limit of 4") as info:
        fmt.read_limited(tmp_path / "f", "bad_scores", 4)
    assert info.value.kind == "bad_scores"
    assert fmt.read_limited(tmp_path / "f", "bad_scores", 5) == b"12345"
    with pytest.raises(BadFileError, match="a folder"):
        fmt.read_limited(tmp_path, "bad_scores", 5)
    with pytest.raises(BadFileError, match="cannot open"):
        fmt.read_limited(tmp_path / "absent", "bad_scores", 5)


def test_reader_errors_survive_pickling():
    import pickle

    from threecad.eval.mapio import MapReadError

    err = pickle.loads(pickle.dumps(MapReadError("/x/m.npy", "truncated", "unreadable_map")))
    assert isinstance(err, MapReadError) and (err.kind, err.message, str(err)) == (
        "unreadable_map", "truncated", "/x/m.npy: truncated")
    assert err.problems[0].path.name == "m.npy"


def test_the_writer_snippet_of_the_format_doc_makes_a_valid_submission(tmp_path, manifest, monkeypatch):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "submission-format.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    predictions = [(r.category, r.folder, r.stem, np.random.default_rng(0).random((8, 10)))
                   for r in _test_rows(manifest).itertuples()]
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "submission-format.md", "exec"), {"predictions": predictions})
    sub = load_submission(tmp_path / "my_method", manifest, check_contents=True, workers=1)
    assert sub.meta.method == "my-method" and len(sub.scores) == len(predictions)
