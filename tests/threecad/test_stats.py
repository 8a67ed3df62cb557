import json

import pandas as pd
import pytest

from threecad.categories import CATEGORIES
from threecad.stats import compare_published, render, summarise


def frame(rows):
    base = {"defect_types": (), "n_types": 0, "n_regions": -1}
    return pd.DataFrame([{**base, **r} for r in rows])


ROWS = [
    dict(category="Aluminum_Ipad", split="train", label="good", height=800, width=600),
    dict(category="Aluminum_Ipad", split="test", label="good", height=900, width=700),
    dict(category="Aluminum_Ipad", split="test", label="defect", height=1000, width=650,
         defect_types=("scratch", "dent"), n_types=2, n_regions=3),
    dict(category="Aluminum_Ipad", split="test", label="defect", height=760, width=1024,
         defect_types=("scratch",), n_types=1, n_regions=1),
    dict(category="Copper_Stator", split="train", label="good", height=1024, width=1024),
    dict(category="Copper_Stator", split="test", label="defect", height=1024, width=1024,
         defect_types=("broken_wire",), n_types=1, n_regions=5),
]


def test_summary_matches_hand_counts():
    s = summarise(frame(ROWS))
    ai = s["categories"]["Aluminum_Ipad"]
    assert ai == {"code": "AI", "train": 1, "test": 3, "test_good": 1, "test_defect": 2,
                  "defect_types": 2, "height": [760, 1000], "width": [600, 1024],
                  "regions_per_defect_image": [1, 3], "types_per_defect_image": [1, 2]}
    cs = s["categories"]["Copper_Stator"]
    assert cs["test_good"] == 0 and cs["regions_per_defect_image"] == [5, 5]
    t = s["total"]
    assert (t["train"], t["test"], t["test_defect"], t["defect_types"]) == (2, 4, 3, 3)
    assert t["regions_per_defect_image"] == [1, 5] and t["height"] == [760, 1024]
    assert list(s["categories"]) == ["Aluminum_Ipad", "Copper_Stator"]


def test_category_without_defects_has_null_ranges():
    s = summarise(frame(ROWS[:2]))
    assert s["categories"]["Aluminum_Ipad"]["regions_per_defect_image"] is None
    assert "-" in render(s, "table")


def test_render_formats():
    s = summarise(frame(ROWS))
    assert json.loads(render(s, "json")) == json.loads(json.dumps(s))
    csv_text = render(s, "csv").splitlines()
    assert csv_text[0].startswith("code,folder,train,test,test_good,test_defect,defect_types,height_min")
    assert csv_text[1].startswith("AI,Aluminum_Ipad,1,3,1,2,2,760,1000,600,1024,1,3,1,2")
    assert csv_text[-1].startswith("all,,2,4,")
    md = render(s, "markdown").splitlines()
    assert md[0].startswith("| code | folder |") and md[-1].startswith("| all |")
    table = render(s, "table")
    assert "760-1000" in table and "Copper_Stator" in table
    with pytest.raises(ValueError):
        render(s, "xml")


def published_summary():
    cats = {c.folder: {"code": c.code, **{k: v for k, v in c.published_row().items() if k != "code"}}
            for c in CATEGORIES}
    total = {"train": 10493, "test": 16546, "test_good": 5084, "test_defect": 11462, "defect_types": 47}
    return {"categories": cats, "total": total}


def test_compare_published_exact_match_and_differences():
    s = published_summary()
    assert compare_published(s) == []
    s["categories"]["Aluminum_Ipad"]["train"] = 2095
    s["categories"]["Iron_Stator"]["height"] = [1000, 1024]
    s["total"]["train"] = 10492
    diffs = {(d.category, d.field): d for d in compare_published(s)}
    assert set(diffs) == {("AI", "train"), ("IS", "height"), ("all", "train")}
    assert str(diffs[("AI", "train")]) == "AI train: tree 2095, published 2096"


def test_compare_published_reports_missing_categories():
    s = published_summary()
    del s["categories"]["Copper_Stator"]
    diffs = compare_published(s)
    assert [(d.category, d.field) for d in diffs] == [("CS", "missing")]
    assert compare_published(s, only_present=True) == []


# --- the per-image table and its region table are one set (issue 14, class 5) -----------------

def _pair(tag: str):
    images = pd.DataFrame({"image_id": [f"{tag}-1", f"{tag}-2"], "n_regions": [1, 2]})
    regions = pd.DataFrame({"image_id": [f"{tag}-1", f"{tag}-2", f"{tag}-2"], "region": [0, 0, 1]})
    return images, regions


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_pair_is_written_as_a_set(tmp_path, suffix):
    from threecad.tables import regions_path, write_table_pair

    path = tmp_path / f"images{suffix}"
    images_file, regions_file = write_table_pair(*_pair("old"), path)
    assert images_file == path and regions_file == regions_path(path)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    assert read(path)["image_id"].tolist() == ["old-1", "old-2"]
    assert read(regions_file)["image_id"].str.startswith("old").all()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, regions_file.name])


def test_killed_between_the_two_publications_leaves_no_image_table(tmp_path, monkeypatch):
    """The image table is the set's marker: once the region table is replaced, the old image
    table is gone; a run that dies before publishing its image table leaves none."""
    import os

    from threecad.tables import regions_path, write_table_pair

    path = tmp_path / "images.csv"
    write_table_pair(*_pair("old"), path)
    real_replace = os.replace

    def dying_replace(src, dst):
        if str(dst) == str(path):
            raise KeyboardInterrupt  # as a kill between the two renames
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        write_table_pair(*_pair("new"), path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert not path.exists()  # no image table paired with the wrong region table
    assert pd.read_csv(regions_path(path))["image_id"].str.startswith("new").all()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # temporaries removed
    write_table_pair(*_pair("new"), path)  # the next run completes the set
    assert pd.read_csv(path)["image_id"].tolist() == ["new-1", "new-2"]


def test_a_failure_while_writing_keeps_the_old_set(tmp_path, monkeypatch):
    from threecad.tables import regions_path, write_table_pair

    path = tmp_path / "images.csv"
    write_table_pair(*_pair("old"), path)
    images, regions = _pair("new")
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_table_pair(images, regions, path)
    monkeypatch.undo()
    assert pd.read_csv(path)["image_id"].tolist() == ["old-1", "old-2"]
    assert pd.read_csv(regions_path(path))["image_id"].str.startswith("old").all()


# --- stats reports odd files cleanly (issue 14, classes 1 and 7) ------------------------------

def _stats(*args, check_rc):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "threecad", "stats", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


def test_stats_reports_a_fifo_mask_without_opening_it(tree):
    import os

    from tests.conftest import box_mask

    tree.image("Copper_Stator", "train", "good", "000000")
    tree.defect("Copper_Stator", "broken_wire", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    tree.defect("Copper_Stator", "broken_wire", "000002", box_mask((40, 60), (0, 0, 3, 3)))
    mask = tree.root / "Copper_Stator" / "ground_truth" / "broken_wire" / "000002.png"
    mask.unlink()
    os.mkfifo(mask)  # opening it for reading would block for ever
    proc = _stats(tree.root, check_rc=1)
    assert "not a regular file (a named pipe (FIFO))" in proc.stderr and str(mask) in proc.stderr


def test_stats_reports_a_symlink_loop_cleanly(tree):
    tree.image("Copper_Stator", "train", "good", "000000")
    good = tree.root / "Copper_Stator" / "train" / "good"
    (good / "a.png").symlink_to(good / "b.png")
    (good / "b.png").symlink_to(good / "a.png")
    proc = _stats(tree.root, check_rc=1)
    assert "a.png" in proc.stderr or "b.png" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) < 10


def test_stats_refuses_a_label_map_that_is_not_utf8(tree, tmp_path):
    tree.image("Copper_Stator", "train", "good", "000000")
    bad = tmp_path / "labels.json"
    bad.write_bytes(b'{"huahen": "scratch \xff"}')
    proc = _stats(tree.root, "--label-map", bad, check_rc=2)
    assert "--label-map" in proc.stderr and "not UTF-8" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_label_map_from_args_reports_non_utf8_as_a_usage_error(tmp_path):
    from argparse import Namespace

    from threecad.commands._common import label_map_from_args
    from threecad.errors import UsageError

    bad = tmp_path / "labels.csv"
    bad.write_bytes(b"pinyin,english\nhuahen,\xff\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        label_map_from_args(Namespace(label_map=str(bad)))
