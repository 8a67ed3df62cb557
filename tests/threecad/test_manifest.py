import logging

import numpy as np
import pytest

from threecad.errors import DataError, UsageError
from threecad.labels import LabelMap
from threecad.manifest import MANIFEST_COLUMNS, load_manifest, scan
from tests.conftest import box_mask

AI = "Aluminum_Ipad"


def kinds(result):
    return sorted(p.kind for p in result.errors)


def row(manifest, image_id):
    sel = manifest[manifest["image_id"] == image_id]
    assert len(sel) == 1, image_id
    return sel.iloc[0]


def test_english_layout(tree):
    tree.image(AI, "train", "good", "000000", size=(30, 50), channels=3)
    tree.image(AI, "test", "good", "000001")
    tree.defect(AI, "scratch", "000002", box_mask((40, 60), (1, 1, 5, 5)))
    result = scan(tree.root)
    assert result.problems == []
    m = result.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert len(m) == 3
    train = row(m, f"{AI}/train/good/000000")
    assert (train.split, train.label, train.code, train.height, train.width, train.channels) == \
        ("train", "good", "AI", 30, 50, 3)
    assert train.defect_types == () and train.mask_paths == ()
    d = row(m, f"{AI}/test/scratch/000002")
    assert (d.label, d.defect_type, d.defect_types, d.n_types) == ("defect", "scratch", ("scratch",), 1)
    assert d.mask_paths == (str(tree.root.resolve() / AI / "ground_truth" / "scratch" / "000002.png"),)


def test_alias_folder_is_the_canonical_category(tree):
    tree.image("Aluminum_Middle-Frame", "train", "good", "000000")
    m = scan(tree.root).manifest
    assert m.loc[0, "category"] == "Aluminum_Middle_Frame" and m.loc[0, "code"] == "AMF"
    assert "Aluminum_Middle-Frame" in m.loc[0, "image_path"]


def test_masks_joined_by_key_not_position(tree):
    # MVTec-style stems that repeat across folders, and masks whose sorted order differs.
    a0 = box_mask((40, 60), (0, 0, 2, 2))
    b0 = box_mask((40, 60), (10, 10, 20, 20), (30, 30, 35, 35))
    tree.defect(AI, "dent", "000", a0)
    tree.defect(AI, "scratch", "000", b0)
    m = scan(tree.root).manifest
    dent, scratch = row(m, f"{AI}/test/dent/000"), row(m, f"{AI}/test/scratch/000")
    assert dent.mask_paths[0].endswith("ground_truth/dent/000.png")
    assert scratch.mask_paths[0].endswith("ground_truth/scratch/000.png")
    assert dent.defect_types == ("dent",) and scratch.defect_types == ("scratch",)


def test_several_types_from_several_ground_truth_folders(tree):
    tree.defect(AI, "scratch", "000005", box_mask((40, 60), (0, 0, 3, 3)))
    tree.mask(AI, "dent", "000005", box_mask((40, 60), (20, 20, 25, 25)))
    tree.defect(AI, "dent", "000006", box_mask((40, 60), (0, 0, 3, 3)))
    result = scan(tree.root)
    assert result.errors == []
    r = row(result.manifest, f"{AI}/test/scratch/000005")
    assert r.defect_types == ("scratch", "dent") and r.n_types == 2
    assert r.mask_types == ("scratch", "dent")
    assert len(r.mask_paths) == 2


def test_pinyin_names_are_mapped_and_unknown_names_warned(tree, caplog):
    tree.defect(AI, "aotu", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    tree.defect(AI, "huahen", "000002", box_mask((40, 60), (0, 0, 3, 3)))
    tree.defect(AI, "qiguai", "000003", box_mask((40, 60), (0, 0, 3, 3)))
    with caplog.at_level(logging.WARNING):
        result = scan(tree.root)
    m = result.manifest
    assert row(m, f"{AI}/test/aotu/000001").defect_type == "bump"
    assert row(m, f"{AI}/test/aotu/000001").folder == "aotu"
    assert row(m, f"{AI}/test/huahen/000002").defect_types == ("scratch",)
    assert row(m, f"{AI}/test/qiguai/000003").defect_type == "qiguai"
    assert list(result.unknown_labels) == ["qiguai"]
    assert "qiguai" in caplog.text and "aotu" not in caplog.text


def test_user_label_map_translates_unknown_names(tree, tmp_path):
    tree.defect(AI, "qiguai", "000003", box_mask((40, 60), (0, 0, 3, 3)))
    f = tmp_path / "map.csv"
    f.write_text("pinyin,english\nqiguai,odd_mark\n")
    result = scan(tree.root, label_map=LabelMap.from_file(f))
    assert result.manifest.loc[0, "defect_type"] == "odd_mark"
    assert result.unknown_labels == {}


@pytest.mark.parametrize("where", ["root", "category"])
def test_side_file_overrides_folder_types(tree, where):
    tree.defect(AI, "scratch", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    tree.defect(AI, "scratch", "000002", box_mask((40, 60), (0, 0, 3, 3)))
    prefix = f"{AI}/" if where == "root" else ""
    side = (tree.root if where == "root" else tree.root / AI) / "defect_types.csv"
    side.write_text(f"image,types\n{prefix}test/scratch/000001.png,scratch;huahen;aotu;dent\n")
    result = scan(tree.root)
    assert result.errors == []
    assert row(result.manifest, f"{AI}/test/scratch/000001").defect_types == ("scratch", "bump", "dent")
    assert row(result.manifest, f"{AI}/test/scratch/000002").defect_types == ("scratch",)


def test_side_file_problems_are_all_reported(tree):
    tree.defect(AI, "scratch", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    tree.image(AI, "test", "good", "000009")
    (tree.root / "defect_types.csv").write_text(
        "image,types\n"
        f"{AI}/test/scratch/999999,dent\n"
        f"{AI}/test/scratch/000001,\n"
        f"{AI}/test/good/000009,dent\n"
        "too,many,columns\n")
    result = scan(tree.root)
    assert kinds(result) == ["bad_side_file", "bad_side_file", "bad_side_file", "side_file_unknown_image"]
    assert any(":2" in str(p.path) for p in result.errors)


def test_pairing_problems_are_all_reported(tree):
    tree.image(AI, "test", "good", "000001")
    tree.mask(AI, "dent", "000001", box_mask((40, 60), (0, 0, 3, 3)))       # mask for a good image
    tree.mask(AI, "dent", "000777", box_mask((40, 60), (0, 0, 3, 3)))       # no image at all
    tree.image(AI, "test", "scratch", "000002")                              # no mask
    tree.defect(AI, "a", "000003", box_mask((40, 60), (0, 0, 3, 3)))
    tree.defect(AI, "b", "000003", box_mask((40, 60), (0, 0, 3, 3)))
    tree.mask(AI, "c", "000003", box_mask((40, 60), (0, 0, 3, 3)))          # ambiguous
    result = scan(tree.root)
    assert kinds(result) == ["ambiguous_mask", "mask_for_good", "mask_without_image", "missing_mask"]
    with pytest.raises(DataError) as err:
        load_manifest(tree.root)
    text = str(err.value)
    assert "000777.png" in text and "ambiguous_mask" in text and "4 errors" in text


def test_unreadable_image_is_reported(tree):
    bad = tree.root / AI / "train" / "good" / "000000.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    result = scan(tree.root)
    assert kinds(result) == ["unreadable_image"]
    assert result.errors[0].path == bad.resolve()


def test_unexpected_files_and_folders_are_warnings(tree):
    tree.image(AI, "train", "good", "000000")
    (tree.root / "README.txt").write_text("hi")
    (tree.root / "Bottle").mkdir()
    (tree.root / AI / "notes").mkdir()
    (tree.root / AI / "train" / "good" / "thumbs.db").write_text("x")
    result = scan(tree.root)
    assert result.errors == []
    assert sorted(p.kind for p in result.warnings) == ["unexpected_file", "unexpected_file",
                                                       "unknown_folder", "unknown_folder"]


def test_duplicate_category_folders(tree):
    tree.image("Aluminum_Middle_Frame", "train", "good", "000000")
    tree.image("Aluminum_Middle-Frame", "train", "good", "000000")
    assert kinds(scan(tree.root)) == ["duplicate_category"]


def test_category_selection(tree):
    tree.image(AI, "train", "good", "000000")
    tree.image("Copper_Stator", "train", "good", "000000")
    m = scan(tree.root, categories=["cs"]).manifest
    assert set(m["code"]) == {"CS"}
    with pytest.raises(UsageError, match="unknown 3CAD category 'Bottle'"):
        scan(tree.root, categories=["Bottle"])
    result = scan(tree.root, categories=["IS"])
    assert kinds(result) == ["missing_category"]


def test_root_errors(tmp_path, tree):
    with pytest.raises(UsageError, match="does not exist"):
        scan(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a 3CAD tree"):
        scan(tmp_path / "empty")
    tree.image(AI, "train", "good", "000000")
    with pytest.raises(UsageError, match="single category folder"):
        scan(tree.root / AI)
    with pytest.raises(UsageError, match=f"{tree.root.name} looks like one"):
        scan(tree.root.parent)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        scan(f)


def test_manifest_is_sorted_by_key_and_deterministic(tree):
    rng = np.random.default_rng(0)
    for stem in rng.permutation(20):
        tree.image(AI, "train", "good", f"{stem:06d}")
    m = scan(tree.root).manifest
    assert list(m["image_id"]) == sorted(m["image_id"])


# --- issue 14: hostile trees (one test per class, named after it) --------------------------

def test_class1_non_regular_files_fifo_and_symlink_loop_are_listed_not_read(tree):
    import os

    tree.image(AI, "train", "good", "000000")
    tree.defect(AI, "scratch", "000002", box_mask((40, 60), (1, 1, 5, 5)))
    good = tree.root / AI / "test" / "good"
    good.mkdir(parents=True, exist_ok=True)
    os.mkfifo(good / "000003.png")                             # a FIFO as an image: would block open()
    (good / "000004.png").symlink_to("000004.png")             # a link to itself: ELOOP
    (tree.root / AI / "test" / "loop").symlink_to("loop")     # a loop where a folder is expected
    mask = tree.root / AI / "ground_truth" / "scratch" / "000002.png"
    mask.unlink()
    os.mkfifo(mask)                                            # a FIFO as a mask
    result = scan(tree.root)
    found = {(p.kind, p.path.name) for p in result.errors}
    assert {("not_regular_file", "000003.png"), ("not_regular_file", "000004.png"),
            ("not_regular_file", "loop"), ("not_regular_file", "000002.png"),
            ("missing_mask", "000002.png")} <= found, found
    assert "FIFO" in next(p.message for p in result.errors if p.path.name == "000003.png")
    assert "link loop" in next(p.message for p in result.errors if p.path.name == "000004.png")
    assert len(result.manifest) == 2  # the train image and the defective one


def test_class1_fifo_side_file_is_refused(tree):
    import os

    tree.defect(AI, "scratch", "000002", box_mask((40, 60), (1, 1, 5, 5)))
    os.mkfifo(tree.root / "defect_types.csv")
    result = scan(tree.root)
    assert [(p.kind, p.path.name) for p in result.errors] == [("not_regular_file", "defect_types.csv")]


def test_class7_non_utf8_file_name_is_a_problem_and_tables_still_write(tree, tmp_path):
    import json
    import os

    from threecad.tables import write_table

    tree.image(AI, "train", "good", "000000")
    good = tree.root / AI / "train" / "good"
    bad = os.path.join(os.fsencode(good), b"\xff\xfe01.png")
    with open(bad, "wb") as fh:
        fh.write((good / "000000.png").read_bytes())
    result = scan(tree.root)
    [problem] = result.problems
    assert problem.kind == "bad_name" and problem.is_error
    assert "\ufffd" in str(problem.path)
    json.dumps(problem.to_dict())                       # printable and serialisable
    str(problem.path).encode("utf-8")
    write_table(result.manifest, tmp_path / "images.parquet")   # no undecodable name reaches a table
    assert list(result.manifest["stem"]) == ["000000"]


def test_docs_pinyin_table_is_the_code_table():
    """docs/dataset.md lists exactly the built-in Pinyin table, in its order."""
    import re
    from pathlib import Path

    from threecad.labels import PINYIN_TO_ENGLISH

    text = (Path(__file__).parents[2] / "docs" / "dataset.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z]+)` \| `([a-z_]+)` \|$", text, flags=re.M)
    assert rows == list(PINYIN_TO_ENGLISH.items())
