"""Tests of eval.submission: loading and validating a submission folder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from threecad.eval.mapio import read_map
from threecad.eval.submission import Submission, SubmissionError, SubmissionMeta, load_submission
from tests.conftest import box_mask
from threecad.categories import CATEGORIES
from threecad.errors import BadFileError, DataError, UsageError
from threecad.manifest import scan

CS, IS = "Copper_Stator", "Iron_Stator"


# ---------------------------------------------------------------- helpers

@pytest.fixture
def manifest(tree):
    """A tiny dataset: CS (2 good, 2 broken_wire) and IS (1 good, huahen = scratch, rust)."""
    mask = box_mask((8, 10), (2, 2, 5, 5))
    for cat in (CS, IS):
        tree.image(cat, "train", "good", "000000", size=(8, 10))
        tree.image(cat, "train", "good", "000009", size=(8, 10))
    tree.image(CS, "test", "good", "000000", size=(8, 10))
    tree.image(CS, "test", "good", "000001", size=(8, 10))
    tree.defect(CS, "broken_wire", "000002", mask)
    tree.defect(CS, "broken_wire", "000003", mask)
    tree.image(IS, "test", "good", "000000", size=(8, 10))
    tree.defect(IS, "huahen", "000001", mask)
    tree.defect(IS, "rust", "000002", mask)
    result = scan(tree.root)
    assert not result.errors
    return result.manifest


def _test_rows(manifest):
    return manifest[manifest["split"] == "test"]


def save_map(path: Path, arr: np.ndarray) -> Path:
    """Write ``arr`` in the format named by the suffix of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, arr)
    elif suffix in (".tif", ".tiff"):
        Image.fromarray(arr).save(path, format="TIFF")
    elif suffix == ".png":
        assert cv2.imwrite(str(path), arr)
    else:
        path.write_bytes(b"x")
    return path


def write_submission(preds: Path, manifest, *, ext: str = ".npy", dtype=np.float32,
                     rename: dict[str, str] | None = None, only: tuple[str, ...] | None = None) -> Path:
    """One map per test image of ``manifest`` under ``preds``."""
    rename = rename or {}
    preds.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(_test_rows(manifest).itertuples()):
        if only is not None and row.category not in only:
            continue
        arr = (np.arange(80).reshape(8, 10) % (i + 2)).astype(dtype)
        save_map(preds / rename.get(row.category, row.category) / "test" / row.folder / f"{row.stem}{ext}", arr)
    return preds


def write_scores(preds: Path, rows: list[tuple[str, str]], header: str = "image,score") -> Path:
    text = header + "\n" + "".join(f"{a},{b}\n" for a, b in rows)
    (preds / "scores.csv").write_text(text)
    return preds / "scores.csv"


def all_scores(manifest) -> list[tuple[str, str]]:
    return [(iid, str(k / 10)) for k, iid in enumerate(_test_rows(manifest)["image_id"])]


def problems_of(excinfo) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in excinfo.value.problems:
        out.setdefault(p.kind, []).append(p)
    return out


def load_fails(preds, manifest, **kw) -> dict[str, list]:
    with pytest.raises(SubmissionError) as info:
        load_submission(preds, manifest, **kw)
    assert isinstance(info.value, DataError) and info.value.exit_code == 1
    return problems_of(info)


# ---------------------------------------------------------------- valid submissions

def test_valid_submission(tmp_path, manifest):
    preds = write_submission(tmp_path / "my_method", manifest)
    sub = load_submission(preds, manifest)
    assert isinstance(sub, Submission)
    ids = _test_rows(manifest)["image_id"].tolist()
    assert sorted(sub.maps) == sorted(ids)
    assert sub.maps[f"{CS}/test/broken_wire/000002"] == preds / CS / "test" / "broken_wire" / "000002.npy"
    assert sub.categories == (CS, IS)
    assert sub.scores is None
    assert sub.meta == SubmissionMeta(1, "my_method", None, {})
    assert sub.root == preds.resolve()
    assert sub.files() == sorted(sub.maps.values())


@pytest.mark.parametrize("ext, dtype", [
    (".npy", np.float16), (".npy", np.float32), (".npy", np.float64), (".npy", np.uint8),
    (".npy", np.int32), (".npy", bool), (".tif", np.float32), (".tiff", np.float32),
    (".png", np.uint8), (".png", np.uint16),
])
def test_every_map_format_loads(tmp_path, manifest, ext, dtype):
    preds = write_submission(tmp_path / "preds", manifest, ext=ext, dtype=dtype)
    sub = load_submission(preds, manifest, check_contents=True, workers=2)
    assert len(sub.maps) == len(_test_rows(manifest))
    for path in sub.maps.values():
        assert path.suffix == ext
        arr = read_map(path)
        assert arr.dtype == np.dtype(dtype) and arr.shape == (8, 10)


def test_mixed_formats(tmp_path, manifest):
    preds = tmp_path / "preds"
    for i, row in enumerate(_test_rows(manifest).itertuples()):
        ext = (".npy", ".tif", ".png")[i % 3]
        dtype = np.uint8 if ext == ".png" else np.float32
        save_map(preds / row.category / "test" / row.folder / f"{row.stem}{ext}", np.ones((4, 4), dtype))
    sub = load_submission(preds, manifest, check_contents=True)
    assert {p.suffix for p in sub.maps.values()} == {".npy", ".tif", ".png"}


def test_category_aliases(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest, rename={CS: "CS", IS: "iron-stator"})
    sub = load_submission(preds, manifest)
    assert sub.categories == (CS, IS)
    assert sub.maps[f"{CS}/test/good/000000"] == preds / "CS" / "test" / "good" / "000000.npy"
    assert f"{IS}/test/rust/000002" in sub.maps


def test_english_folder_name_accepted(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / IS / "test" / "huahen").rename(preds / IS / "test" / "scratch")
    sub = load_submission(preds, manifest)
    assert sub.maps[f"{IS}/test/huahen/000001"] == preds / IS / "test" / "scratch" / "000001.npy"


def test_subset_of_categories(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest, only=(IS,))
    sub = load_submission(preds, manifest)
    assert sub.categories == (IS,)
    assert sorted(sub.maps) == sorted(i for i in _test_rows(manifest)["image_id"] if i.startswith(IS))


def test_categories_argument(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / CS / "test" / "good" / "000000.npy").unlink()  # CS is broken, but not asked for
    sub = load_submission(preds, manifest, categories=["is"])
    assert sub.categories == (IS,)
    assert all(k.startswith(IS) for k in sub.maps)
    found = load_fails(preds, manifest, categories=["IS", "AI"])
    assert list(found) == ["missing_category"]
    assert found["missing_category"][0].path == preds.resolve() / "Aluminum_Ipad"
    with pytest.raises(UsageError, match="unknown 3CAD category"):
        load_submission(preds, manifest, categories=["nope"])


def test_real_sample_roundtrip(tmp_path):
    from threecad.sample import write_sample

    write_sample(tmp_path / "3cad", seed=0, scale="tiny", categories=["CS", "IS"])
    manifest = scan(tmp_path / "3cad").manifest
    preds = write_submission(tmp_path / "preds", manifest, rename={CS: "CS"})
    write_scores(preds, [(i.replace(CS, "cs"), "0.5") for i in _test_rows(manifest)["image_id"]])
    sub = load_submission(preds, manifest, check_contents=True)
    assert sorted(sub.maps) == sorted(_test_rows(manifest)["image_id"])
    assert sorted(sub.scores) == sorted(sub.maps)


def test_root_extras_allowed_and_hidden_ignored(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / "results").mkdir()
    (preds / "results" / "results.json").write_text("{}")
    (preds / ".DS_Store").write_bytes(b"x")
    (preds / CS / "test" / "good" / ".000000.npy.swp").write_bytes(b"x")
    (preds / ".git").mkdir()
    (preds / ".git" / "x.npy").write_bytes(b"x")
    (preds / "submission.json").write_text('{"method": "m"}')
    load_submission(preds, manifest)


def test_structural_check_reads_no_map(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    for path in preds.rglob("*.npy"):
        path.write_bytes(b"garbage")
    assert len(load_submission(preds, manifest).maps) == len(_test_rows(manifest))
    found = load_fails(preds, manifest, check_contents=True)
    assert list(found) == ["unreadable_map"]
    assert len(found["unreadable_map"]) == len(_test_rows(manifest))


def test_progress_bar(tmp_path, manifest, capsys, monkeypatch):
    monkeypatch.setenv("THREECAD_PROGRESS", "bars")  # bars, not 10-second log lines, on the captured stderr
    preds = write_submission(tmp_path / "preds", manifest)
    load_submission(preds, manifest, check_contents=True, progress=True, workers=3)
    assert "checking maps" in capsys.readouterr().err


def test_full_size_structural_check_opens_no_file(tmp_path, monkeypatch):
    """The structural check of a full-size submission lists folders only (its speed: scripts/ benchmarks)."""
    import threecad.eval.format as fmt_module
    import threecad.eval.mapio as mapio

    rows = []
    for cat in CATEGORIES:
        for i in range(cat.test):
            folder = "good" if i < cat.test_good else f"type_{i % cat.defect_types}"
            rows.append({"image_id": f"{cat.folder}/test/{folder}/{i:06d}", "category": cat.folder,
                         "split": "test", "folder": folder, "stem": f"{i:06d}", "defect_type": folder})
    manifest = pd.DataFrame(rows)
    assert len(manifest) == 16546
    preds = tmp_path / "preds"
    for folder in {r["image_id"].rsplit("/", 1)[0] for r in rows}:
        (preds / folder).mkdir(parents=True)
    for r in rows:
        with open(preds / f"{r['image_id']}.npy", "wb"):
            pass
    opened = []

    def spy(path, kind, **kwargs):
        opened.append(path)
        raise BadFileError(path, "not opened in this test", kind)

    for module in (fmt_module, mapio):
        monkeypatch.setattr(module, "open_regular", spy)
    sub = load_submission(preds, manifest)
    assert len(sub.maps) == 16546 and not opened
    with pytest.raises(SubmissionError):  # the spy sees the reads of the full check
        load_submission(preds, manifest, check_contents=True, workers=1)
    assert len(opened) == 16546


# ---------------------------------------------------------------- usage errors

def test_no_category_folder(tmp_path, manifest):
    preds = tmp_path / "preds"
    (preds / "results").mkdir(parents=True)
    (preds / "stuff").mkdir()
    with pytest.raises(UsageError, match=r"expected <Category>/test/<folder>/<stem>\.npy"):
        load_submission(preds, manifest)
    with pytest.raises(UsageError, match="does not exist"):
        load_submission(tmp_path / "nowhere", manifest)


def test_usage_hints(tmp_path, manifest):
    preds = write_submission(tmp_path / "outer" / "preds", manifest)
    with pytest.raises(UsageError, match="pass that folder instead"):
        load_submission(tmp_path / "outer", manifest)
    with pytest.raises(UsageError, match="single category folder"):
        load_submission(preds / CS, manifest)


# ---------------------------------------------------------------- problems, one by one

def test_missing_map(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / CS / "test" / "broken_wire" / "000003.npy").unlink()
    found = load_fails(preds, manifest)
    assert list(found) == ["missing_map"]
    (p,) = found["missing_map"]
    assert p.path == preds.resolve() / CS / "test" / "broken_wire" / "000003"
    assert f"{CS}/test/broken_wire/000003" in p.message


def test_missing_folder_reports_every_image(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    for path in (preds / CS / "test" / "good").iterdir():
        path.unlink()
    found = load_fails(preds, manifest)
    assert len(found["missing_map"]) == 2


def test_duplicate_map(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    save_map(preds / CS / "test" / "good" / "000001.png", np.zeros((4, 4), np.uint8))
    found = load_fails(preds, manifest)
    assert list(found) == ["duplicate_map"]
    (p,) = found["duplicate_map"]
    assert p.path.name == "000001.png" and "000001.npy" in p.message


def test_duplicate_through_folder_alias(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    save_map(preds / IS / "test" / "scratch" / "000001.npy", np.zeros((4, 4), np.float32))
    assert list(load_fails(preds, manifest)) == ["duplicate_map"]


@pytest.mark.parametrize("rel", [
    f"{CS}/test/good/000007.npy",          # wrong stem
    f"{CS}/test/good/000002.npy",          # a defective image's stem filed under good
    f"{CS}/test/crack/000002.npy",         # unknown folder
    f"{CS}/train/good/000000.npy",         # a train image
    f"{CS}/test/000000.npy",               # missing the folder level
    f"{CS}/test/good/sub/000000.npy",      # nested too deep
    f"{CS}/ground_truth/broken_wire/000002.png",
])
def test_extra_map(tmp_path, manifest, rel):
    preds = write_submission(tmp_path / "preds", manifest)
    save_map(preds / rel, np.zeros((4, 4), np.float32 if rel.endswith(".npy") else np.uint8))
    found = load_fails(preds, manifest)
    assert list(found) == ["extra_map"]
    assert found["extra_map"][0].path == preds.resolve() / rel


def test_unknown_files(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / CS / "test" / "good" / "000000.jpg").write_bytes(b"x")
    (preds / CS / "test" / "good" / "notes.txt").write_text("x")
    (preds / "README.md").write_text("x")
    (preds / "extras").mkdir()
    found = load_fails(preds, manifest)
    assert list(found) == ["unknown_file"]
    names = sorted(p.path.name for p in found["unknown_file"])
    assert names == ["000000.jpg", "README.md", "extras", "notes.txt"]


def test_duplicate_and_unknown_category(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest, only=(CS,))
    write_submission(tmp_path / "preds", manifest, only=(CS,), rename={CS: "CS"})
    (preds / "Aluminum_Ipad" / "test" / "good").mkdir(parents=True)
    found = load_fails(preds, manifest)
    assert sorted(found) == ["duplicate_category", "unknown_category"]
    assert found["duplicate_category"][0].path.name == CS  # "CS" sorts first and is kept
    assert found["unknown_category"][0].path.name == "Aluminum_Ipad"


@pytest.mark.parametrize("arr, kind, text", [
    (np.array([[np.nan, 1.0]], np.float32), "bad_map", "NaN"),
    (np.array([[np.inf, 1.0]], np.float64), "bad_map", "infinite"),
    (np.zeros((2, 4, 4), np.float32), "bad_map", "3-D"),
])
def test_bad_map_contents(tmp_path, manifest, arr, kind, text):
    preds = write_submission(tmp_path / "preds", manifest)
    target = preds / IS / "test" / "rust" / "000002.npy"
    np.save(target, arr)
    load_submission(preds, manifest)  # structure alone is fine
    found = load_fails(preds, manifest, check_contents=True)
    assert list(found) == [kind]
    assert found[kind][0].path == target.resolve() and text in found[kind][0].message


def test_pickled_npy(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    target = preds / IS / "test" / "good" / "000000.npy"
    obj = np.empty((2, 2), dtype=object)
    obj[:] = 0.5
    np.save(target, obj, allow_pickle=True)
    found = load_fails(preds, manifest, check_contents=True)
    assert list(found) == ["bad_map"]
    assert "pickled arrays are refused" in found["bad_map"][0].message


def test_rgb_png(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest, ext=".png", dtype=np.uint8)
    target = preds / CS / "test" / "good" / "000000.png"
    cv2.imwrite(str(target), np.zeros((4, 4, 3), np.uint8))
    found = load_fails(preds, manifest, check_contents=True)
    assert list(found) == ["bad_map"]
    assert "expected a single-channel (grey) map" in found["bad_map"][0].message


# ---------------------------------------------------------------- scores.csv

def test_scores_valid(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest, rename={IS: "IS"})
    rows = all_scores(manifest)
    rows = [(k.replace(IS, "IS").replace("huahen", "scratch"), v) for k, v in rows]
    rows.append(("Aluminum_Ipad/test/good/000000", "1.0"))  # a category not scored: ignored
    write_scores(preds, rows, header="Image, Score")
    sub = load_submission(preds, manifest)
    assert sub.scores == {k: float(v) for k, v in all_scores(manifest)}
    assert sub.files()[-1] == preds.resolve() / "scores.csv"


def test_scores_of_unselected_category_ignored(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    write_scores(preds, [r for r in all_scores(manifest) if r[0].startswith(IS)])
    sub = load_submission(preds, manifest, categories=["IS"])
    assert len(sub.scores) == 3


@pytest.mark.parametrize("header", ["image,value", "image", "image,score,extra", ""])
def test_scores_bad_header(tmp_path, manifest, header):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / "scores.csv").write_text(header + "\n" if header else "")
    found = load_fails(preds, manifest)
    assert list(found) == ["bad_scores"] and len(found["bad_scores"]) == 1
    assert "image,score" in found["bad_scores"][0].message


@pytest.mark.parametrize("key, value, text", [
    (f"{CS}/test/good/000077", "0.1", "no such test image"),
    (f"{CS}/train/good/000000", "0.1", "<Category>/test/<defect_type>/<stem>"),
    (f"{CS}/test/crack/000002", "0.1", "no folder 'crack'"),
    ("Nope/test/good/000000", "0.1", "unknown category"),
    (f"CS/test/good/000000", "0.3", "already listed on line 4"),
])
def test_scores_bad_keys(tmp_path, manifest, key, value, text):
    preds = write_submission(tmp_path / "preds", manifest)
    rows = all_scores(manifest)
    path = write_scores(preds, rows + [(key, value)])
    found = load_fails(preds, manifest)
    assert list(found) == ["bad_scores"]
    (p,) = found["bad_scores"]
    assert text in p.message
    assert p.path == Path(f"{path.resolve()}:{len(rows) + 2}")


@pytest.mark.parametrize("value, text", [
    ("abc", "not a number"), ("", "not a number"), ("nan", "not finite"), ("-inf", "not finite"),
    ("1e999", "not finite"),
])
def test_scores_bad_values(tmp_path, manifest, value, text):
    preds = write_submission(tmp_path / "preds", manifest)
    rows = all_scores(manifest)
    rows[2] = (rows[2][0], value)
    path = write_scores(preds, rows)
    found = load_fails(preds, manifest)
    assert list(found) == ["bad_scores"]
    (p,) = found["bad_scores"]
    assert text in p.message and rows[2][0] in p.message
    assert p.path == Path(f"{path.resolve()}:4")


def test_scores_wrong_column_count_and_extension(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    rows = all_scores(manifest)
    rows[0] = (rows[0][0] + ".png", rows[0][1])  # an extension on the stem is tolerated
    path = write_scores(preds, rows)
    with open(path, "a") as fh:
        fh.write(f"{CS}/test/good/000000,1,2\n")
    found = load_fails(preds, manifest)
    assert [p.message for p in found["bad_scores"]] == ["expected 2 columns (image,score), got 3"]


def test_scores_missing_images(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    rows = [r for r in all_scores(manifest) if not r[0].endswith("broken_wire/000003")]
    rows = [r for r in rows if not r[0].startswith(IS)]
    write_scores(preds, rows)
    found = load_fails(preds, manifest)
    messages = [p.message for p in found["bad_scores"]]
    assert len(messages) == 2
    assert messages[0] == f"no score for {CS}/test/broken_wire/000003"
    assert messages[1].startswith("no score for any of the 3 test images of IS")


# ---------------------------------------------------------------- submission.json

def test_metadata_valid(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    meta = {"format_version": 1, "method": "PatchCore", "team": "us", "backbone": "wrn50", "k": [1, 2]}
    (preds / "submission.json").write_text(json.dumps(meta))
    sub = load_submission(preds, manifest)
    assert sub.meta == SubmissionMeta(1, "PatchCore", "us", {"backbone": "wrn50", "k": [1, 2]})


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", "JSON object"),
    ("{not json", "not valid JSON"),
    ('{"format_version": 2}', "format_version 2"),
    ('{"format_version": "1"}', "format_version '1'"),
    ('{"format_version": true}', "format_version True"),
    ('{"method": 3}', "method must be a non-empty string"),
    ('{"method": "  "}', "method must be a non-empty string"),
    ('{"team": ["a"]}', "team must be a string"),
])
def test_metadata_bad(tmp_path, manifest, text, words):
    preds = write_submission(tmp_path / "preds", manifest)
    (preds / "submission.json").write_text(text)
    found = load_fails(preds, manifest)
    assert list(found) == ["bad_metadata"]
    assert words in found["bad_metadata"][0].message


# ---------------------------------------------------------------- everything at once

def test_all_problems_reported_at_once(tmp_path, manifest):
    preds = write_submission(tmp_path / "preds", manifest)
    root = preds.resolve()
    planted = {
        "missing_map": root / CS / "test" / "good" / "000000",
        "duplicate_map": root / CS / "test" / "good" / "000001.tif",
        "extra_map": root / CS / "test" / "broken_wire" / "000099.npy",
        "unknown_file": root / IS / "test" / "rust" / "000002.txt",
        "unreadable_map": root / IS / "test" / "good" / "000000.npy",
        "bad_map": root / IS / "test" / "rust" / "000002.npy",
        "bad_scores": Path(f"{root / 'scores.csv'}:3"),
        "bad_metadata": root / "submission.json",
        "missing_category": root / "Aluminum_Pc",
    }
    (preds / CS / "test" / "good" / "000000.npy").unlink()
    save_map(preds / CS / "test" / "good" / "000001.tif", np.zeros((4, 4), np.float32))
    save_map(preds / CS / "test" / "broken_wire" / "000099.npy", np.zeros((4, 4), np.float32))
    (preds / IS / "test" / "rust" / "000002.txt").write_text("notes")
    (preds / IS / "test" / "good" / "000000.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(preds / IS / "test" / "rust" / "000002.npy", np.full((4, 4), np.nan, np.float32))
    rows = all_scores(manifest)
    rows[1] = (rows[1][0], "high")
    write_scores(preds, rows)
    (preds / "submission.json").write_text('{"format_version": 7}')
    before = sorted(p for p in tmp_path.rglob("*"))

    with pytest.raises(SubmissionError) as info:
        load_submission(preds, manifest, categories=["CS", "IS", "AP"], check_contents=True)
    found = problems_of(info)
    assert sorted(found) == sorted(planted)
    for kind, path in planted.items():
        assert [p.path for p in found[kind]] == [path], kind
    text = str(info.value)
    for kind, path in planted.items():
        assert kind in text and str(path) in text
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written
