import json
import subprocess
import sys

import pytest

import threecad
from threecad.errors import DataError, UsageError
from threecad.manifest import scan
from threecad.splits import make_splits, manifest_sha256, read_splits, write_splits


def cli(*args, rc=0):
    proc = subprocess.run([sys.executable, "-m", "threecad", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == rc, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory):
    from threecad.sample import write_sample

    root = tmp_path_factory.mktemp("splits") / "3cad"
    write_sample(root, seed=1, scale="small", categories=["AI", "CS"])
    return root, scan(root).manifest


def test_splits_never_leak_test_images_and_are_nested(small_manifest):
    root, m = small_manifest
    s = make_splits(m, val_fraction=0.25, shots=(1, 2, 4, 8), seed=3, root=root)
    test_ids = set(m.loc[m["split"] == "test", "image_id"])
    for category, e in s["categories"].items():
        train = set(e["train"])
        assert set(e["test"]) == {i for i in test_ids if i.startswith(category + "/")}
        assert set(e["val"]) | set(e["fit"]) == train and not set(e["val"]) & set(e["fit"])
        assert len(e["val"]) == round(0.25 * len(train))
        for name in ("val", "fit", "shot_1", "shot_2", "shot_4", "shot_8"):
            assert not set(e[name]) & test_ids, name
            assert all("/train/good/" in i for i in e[name])
        assert set(e["shot_1"]) <= set(e["shot_2"]) <= set(e["shot_4"]) <= set(e["shot_8"]) <= set(e["fit"])
        assert len(e["shot_8"]) == 8


def test_deterministic_per_seed_and_independent_of_other_categories(small_manifest):
    root, m = small_manifest
    a = make_splits(m, seed=5)
    b = make_splits(m, seed=5)
    c = make_splits(m, seed=6)
    only_ai = make_splits(m[m["code"] == "AI"], seed=5)
    assert a["categories"] == b["categories"]
    assert a["categories"]["Aluminum_Ipad"]["val"] != c["categories"]["Aluminum_Ipad"]["val"]
    assert only_ai["categories"]["Aluminum_Ipad"] == a["categories"]["Aluminum_Ipad"]


def test_too_few_images_for_a_shot_size_is_recorded(small_manifest):
    _, m = small_manifest
    s = make_splits(m, shots=(1, 1000))
    for e in s["categories"].values():
        assert e["skipped_shots"] == [1000] and "shot_1000" not in e
    with pytest.raises(UsageError):
        make_splits(m, val_fraction=1.5)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_round_trip_and_load_split(small_manifest, tmp_path, suffix):
    root, m = small_manifest
    s = make_splits(m, seed=2, root=root)
    path = write_splits(s, tmp_path / f"splits{suffix}")
    back = read_splits(path)
    assert back["manifest_sha256"] == manifest_sha256(m)
    for category, e in s["categories"].items():
        for name, ids in e.items():
            if name != "skipped_shots":
                assert back["categories"][category][name] == ids
    rows = threecad.load_split(path, "val")
    assert list(rows["image_id"]) == [i for e in s["categories"].values() for i in e["val"]]
    assert set(rows["split"]) == {"train"}
    test_rows = threecad.load_split(path, "test", categories=["CS"])
    assert set(test_rows["code"]) == {"CS"} and set(test_rows["split"]) == {"test"}
    with pytest.raises(UsageError, match="no split 'shot_99'"):
        threecad.load_split(path, "shot_99")


def test_load_split_refuses_a_changed_tree(tmp_path):
    from threecad.sample import write_sample

    root = tmp_path / "3cad"
    write_sample(root, seed=0, scale="tiny", categories=["CS"])
    path = write_splits(make_splits(scan(root).manifest, root=root), tmp_path / "s.json")
    victim = next((root / "Copper_Stator" / "train" / "good").iterdir())
    victim.unlink()
    with pytest.raises(DataError, match="differs from the one"):
        threecad.load_split(path, "train")


def test_cli(small_manifest, tmp_path):
    root, _ = small_manifest
    out = tmp_path / "s.json"
    proc = cli("split", root, "--out", out, "--val-fraction", "0.2", "--shots", "1,3", "--seed", "4")
    assert "Aluminum_Ipad" in proc.stderr
    data = json.loads(out.read_text())
    assert data["shots"] == [1, 3] and data["seed"] == 4
    cli("split", root, "--out", tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().startswith("# format_version=1")
    assert "use a .json or .csv" in cli("split", root, "--out", tmp_path / "s.txt", rc=2).stderr
    assert "argument --shots: expected sizes like 1,2,4,8" in cli("split", root, "--shots", "a,b", rc=2).stderr
