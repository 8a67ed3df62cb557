"""Tests of the synthetic sample generator (``threecad.sample``)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from threecad.categories import CATEGORIES, UnknownCategoryError, get_category
from threecad.labels import LabelMap
from threecad.sample import SAMPLE_TYPES, SCALES, SampleTruth, write_sample
from threecad.sample import writer as sample_writer
from threecad.sample.catalog import CHANNELS, SCALE_PLANS
from threecad.sample.compose import render_image
from threecad.sample.plan import PlannedImage, image_rng, part_rng, plan_category
from threecad.sample.shots import take_shot
from threecad.sample.surfaces import render_scene

STEM = re.compile(r"^\d{6}$")
SUBSET = ["ACC", "AI", "AP", "IS"]  # covers aotu/neiqiaopian, grey and RGB, multi-type and not


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SampleTruth:
    return write_sample(tmp_path_factory.mktemp("tiny") / "sample", seed=0, scale="tiny")


@pytest.fixture(scope="module")
def pinyin(tmp_path_factory: pytest.TempPathFactory) -> SampleTruth:
    return write_sample(tmp_path_factory.mktemp("pinyin") / "sample", seed=0, scale="tiny",
                        names="pinyin", categories=SUBSET)


def _read(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert arr is not None, path
    return arr


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _union(root: Path, img) -> np.ndarray:
    masks = [_read(root / p) for p in img.mask_paths]
    return np.maximum.reduce(masks)


# ------------------------------------------------------------------ catalogue

def test_sample_types_match_published_counts_and_label_table() -> None:
    labels = LabelMap()
    known = set(labels.known_english())
    assert set(SAMPLE_TYPES) == {c.code for c in CATEGORIES}
    for cat in CATEGORIES:
        types = SAMPLE_TYPES[cat.code]
        assert len(types) == len(set(types)) == cat.defect_types
        for name in types:
            assert name in known
            labels.to_pinyin(name)  # must not raise
    assert sum(len(t) for t in SAMPLE_TYPES.values()) == 47
    assert SCALES == ("tiny", "demo", "small")


# ------------------------------------------------------------------ layout

def test_layout_matches_truth_exactly(tiny: SampleTruth) -> None:
    root = tiny.root
    assert sorted(p.name for p in root.iterdir()) == sorted(c.folder for c in CATEGORIES)
    expected = set()
    for img in tiny.images:
        expected.add(img.path)
        expected.update(img.mask_paths)
        assert STEM.match(img.stem)
        assert (img.folder == "good") == (not img.types)
        if img.types:
            assert img.split == "test"
            assert img.folder == img.types[0]
            assert img.mask_folders == img.types
        else:
            assert img.mask_folders == ()
    assert _files(root) == expected
    assert not list(root.parent.glob("*.partial-*"))


def test_stems_numbered_per_split_and_shuffled(tiny: SampleTruth) -> None:
    shuffled = False
    for code in tiny.codes():
        images = tiny.of(code)
        train = sorted(int(i.stem) for i in images if i.split == "train")
        test = [i for i in images if i.split == "test"]
        assert train == list(range(len(train)))
        assert sorted(int(i.stem) for i in test) == list(range(len(test)))  # unique in test
        good = sorted(int(i.stem) for i in test if not i.types)
        shuffled |= good != list(range(len(good)))
    assert shuffled, "test stems should not sort by folder"


def test_test_folders_are_the_categorys_types(tiny: SampleTruth) -> None:
    for cat in CATEGORIES:
        base = tiny.root / cat.folder
        test_dirs = {p.name for p in (base / "test").iterdir()}
        gt_dirs = {p.name for p in (base / "ground_truth").iterdir()}
        assert test_dirs == {"good", *SAMPLE_TYPES[cat.code]}  # every type has an image
        assert gt_dirs == set(SAMPLE_TYPES[cat.code])
        assert [p.name for p in (base / "train").iterdir()] == ["good"]


# ------------------------------------------------------------------ pixels

def test_sizes_channels_in_published_ranges(tiny: SampleTruth) -> None:
    channels: dict[str, set[int]] = defaultdict(set)
    for img in tiny.images:
        cat = get_category(img.code)
        arr = _read(tiny.root / img.path)
        assert arr.dtype == np.uint8
        assert arr.shape[:2] == (img.height, img.width)
        assert (1 if arr.ndim == 2 else arr.shape[2]) == img.channels
        for (lo, hi), v in ((cat.height, img.height), (cat.width, img.width)):
            assert lo <= v <= hi
            assert v <= lo + 0.25 * (hi - lo) + 1  # tiny: lowest quarter of the range
        channels[img.code].add(img.channels)
    assert all(len(v) == 1 for v in channels.values())
    modes = [next(iter(v)) for v in channels.values()]
    assert modes.count(1) >= 2 and modes.count(3) >= 2


def test_images_look_like_parts_not_noise(tiny: SampleTruth) -> None:
    by_cat = defaultdict(list)
    for img in tiny.images:
        if img.split == "train":
            arr = _read(tiny.root / img.path).astype(np.float32)
            grey = arr if arr.ndim == 2 else arr.mean(axis=2)
            by_cat[img.code].append(grey)
            assert grey.std() > 10  # part on a dark background: strong contrast
            small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
            assert small.std() > 0.6 * grey.std()  # large-scale structure, not pixel noise
    for code, images in by_cat.items():
        assert not np.array_equal(images[0], images[1]), code


def test_masks_binary_and_regions_are_8_connected_components(tiny: SampleTruth) -> None:
    for img in tiny.images:
        if not img.types:
            continue
        cat = get_category(img.code)
        masks = [_read(tiny.root / p) for p in img.mask_paths]
        for m in masks:
            assert m.ndim == 2 and m.dtype == np.uint8
            assert m.shape == (img.height, img.width)
            assert set(np.unique(m)) == {0, 255}
        for a, b in zip(masks, masks[1:]):
            assert not np.any((a > 0) & (b > 0))
        union = np.maximum.reduce(masks)
        n, _, stats, _ = cv2.connectedComponentsWithStats(union, connectivity=8)
        assert n - 1 == img.n_regions, img.path
        assert sorted(stats[1:, cv2.CC_STAT_AREA].tolist()) == sorted(img.region_areas)
        lo, hi = cat.regions_per_defect_image
        assert max(lo, len(img.types)) <= img.n_regions <= min(hi, SCALE_PLANS["tiny"].max_regions)


def test_region_sizes_cover_small_medium_large(tiny: SampleTruth) -> None:
    areas = [a for img in tiny.images for a in img.region_areas]
    assert min(areas) < 32 * 32
    assert any(32 * 32 <= a <= 96 * 96 for a in areas)
    assert max(areas) > 96 * 96


def test_multi_type_images(tiny: SampleTruth) -> None:
    for cat in CATEGORIES:
        defect = [i for i in tiny.of(cat.code) if i.types]
        n_types = [len(i.types) for i in defect]
        assert max(n_types) <= cat.types_per_defect_image[1]
        if cat.types_per_defect_image[1] == 1:
            assert max(n_types) == 1, cat.code
            continue
        multi = [i for i in defect if len(i.types) > 1]
        assert multi, cat.code
        for img in multi:
            assert len(set(img.types)) == len(img.types)
            second = tiny.root / img.category / "test" / img.types[1] / f"{img.stem}.png"
            assert not second.exists()  # saved once, under the first type
            for p in img.mask_paths:
                n, _ = cv2.connectedComponents(_read(tiny.root / p), connectivity=8)
                assert n - 1 >= 1  # every type has at least one region


@pytest.mark.parametrize("code", [c.code for c in CATEGORIES])
def test_defects_alter_exactly_their_masks(code: str) -> None:
    """Re-render the clean part from the same stream: pixels differ only inside the masks."""
    cat = get_category(code)
    for k, name in enumerate(SAMPLE_TYPES[code]):
        item = PlannedImage("test", 1000 + k, "000000", cat.height[0], cat.width[0], (name,), (3,))
        drawn = render_image(code, item, CHANNELS[code], part_rng(0, cat, item), image_rng(0, cat, item))
        part = render_scene(code, part_rng(0, cat, item), item.height, item.width, CHANNELS[code])
        clean = take_shot(part, image_rng(0, cat, item)).image
        clean8 = np.clip(clean * 255.0 + 0.5, 0, 255).astype(np.uint8)
        diff = np.abs(drawn.image.astype(int) - clean8.astype(int))
        if diff.ndim == 3:
            diff = diff.max(axis=2)
        mask = drawn.masks[0] > 0
        assert not diff[~mask].any(), name
        assert diff[mask].mean() > 2, name  # the defect is visible
        n, _ = cv2.connectedComponents(drawn.masks[0], connectivity=8)
        assert n - 1 == len(drawn.region_areas) >= 1, name


def test_reshoots_are_distinct_shots_of_a_train_part(tiny: SampleTruth) -> None:
    """Some test images show a train image's part again: same size, nearly the same pixels."""
    by_path = {i.path: i for i in tiny.images}
    for code in tiny.codes():
        shots = [i for i in tiny.of(code) if i.same_part_as]
        assert len(shots) == SCALE_PLANS["tiny"].reshoots, code
        assert {bool(i.types) for i in shots} == {True, False}, code  # a good one and a defective one
        sources = [by_path[i.same_part_as] for i in shots]
        assert all(s.split == "train" for s in sources) and len({s.path for s in sources}) == len(sources)
        for shot, src in zip(shots, sources):
            assert (shot.height, shot.width) == (src.height, src.width)
            a = _read(tiny.root / shot.path).astype(np.float32)
            b = _read(tiny.root / src.path).astype(np.float32)
            assert not np.array_equal(a, b)
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9, shot.path  # the same part
    assert not any(i.same_part_as for i in tiny.images if i.split == "train")


def test_demo_scale_plans_enough_images_for_image_metrics() -> None:
    plan = SCALE_PLANS["demo"]
    for cat in CATEGORIES:
        items = plan_category(cat, plan, 0)
        test = [i for i in items if i.split == "test"]
        good = [i for i in test if not i.types]
        assert len(good) >= 10 and len(test) - len(good) >= 10, cat.code
        assert {t for i in test for t in i.types} == set(SAMPLE_TYPES[cat.code])
        for i in items:
            assert cat.height[0] <= i.height <= cat.height[1] and cat.width[0] <= i.width <= cat.width[1]


# ------------------------------------------------------------------ truth and counts

def _disk_counts(root: Path, cat) -> dict[str, object]:
    base = root / cat.folder
    sizes = [_read(p).shape[:2] for p in sorted(base.glob("*/*/*.png"))
             if p.parts[-3] != "ground_truth"]
    test_defect = [p for p in base.glob("test/*/*.png") if p.parent.name != "good"]
    regions, types = [], []
    for p in test_defect:
        masks = [_read(m) for m in base.glob(f"ground_truth/*/{p.name}")]
        n, _ = cv2.connectedComponents(np.maximum.reduce(masks), connectivity=8)
        regions.append(n - 1)
        types.append(len(masks))
    return {
        "train": len(list(base.glob("train/good/*.png"))),
        "test": len(list(base.glob("test/*/*.png"))),
        "test_good": len(list(base.glob("test/good/*.png"))),
        "test_defect": len(test_defect),
        "defect_types": len({p.name for p in (base / "ground_truth").iterdir()}),
        "height": (min(s[0] for s in sizes), max(s[0] for s in sizes)),
        "width": (min(s[1] for s in sizes), max(s[1] for s in sizes)),
        "regions_per_defect_image": (min(regions), max(regions)),
        "types_per_defect_image": (min(types), max(types)),
    }


def test_counts_match_disk(tiny: SampleTruth) -> None:
    plan = SCALE_PLANS["tiny"]
    for cat in CATEGORIES:
        counts = tiny.counts(cat.code)
        assert counts == _disk_counts(tiny.root, cat), cat.code
        assert counts == tiny.counts(cat.folder)
        assert counts["train"] == plan.train and counts["test_good"] == plan.test_good
        assert counts["defect_types"] == cat.defect_types
        assert counts["test_defect"] >= cat.defect_types
    with pytest.raises(KeyError):
        SampleTruth(tiny.root, 0, "tiny", "english", ()).counts("ACC")


# ------------------------------------------------------------------ determinism and names

def test_same_seed_same_bytes_subset_independent(tiny: SampleTruth, tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again", seed=0, categories=["Aluminum_Middle-Frame", "CS"])
    assert again.codes() == ("AMF", "CS")
    files = _files(again.root)
    assert files and files == {f for f in _files(tiny.root) if f.split("/")[0] in
                               ("Aluminum_Middle_Frame", "Copper_Stator")}
    for f in files:
        assert (again.root / f).read_bytes() == (tiny.root / f).read_bytes(), f
    assert again.images == tuple(i for i in tiny.images if i.code in ("AMF", "CS"))


def test_other_seed_differs(tiny: SampleTruth, tmp_path: Path) -> None:
    other = write_sample(tmp_path / "other", seed=1, categories=["ANI"])
    a = sorted((tmp_path / "other").glob("*/train/good/*.png"))
    assert a
    assert any(p.read_bytes() != (tiny.root / p.relative_to(other.root)).read_bytes() for p in a)


def test_pinyin_names_same_pixels_and_stems(tiny: SampleTruth, pinyin: SampleTruth) -> None:
    labels = LabelMap()
    english = {(i.category, i.split, i.stem): i for i in tiny.images}
    assert len(pinyin.images) == sum(1 for i in tiny.images if i.code in SUBSET)
    for img in pinyin.images:
        ref = english[(img.category, img.split, img.stem)]
        assert img.types == ref.types
        assert img.region_areas == ref.region_areas
        assert img.folder == ("good" if not img.types else labels.to_pinyin(img.types[0]))
        assert img.mask_folders == tuple(labels.to_pinyin(t) for t in img.types)
        assert (pinyin.root / img.path).read_bytes() == (tiny.root / ref.path).read_bytes()
        for p, q in zip(img.mask_paths, ref.mask_paths):
            assert (pinyin.root / p).read_bytes() == (tiny.root / q).read_bytes()
    gt = {p.name for p in (pinyin.root / "Iron_Stator" / "ground_truth").iterdir()}
    assert "neiqiaopian" in gt and "inner_warped_sheet" not in gt
    assert "aotu" in {p.name for p in (pinyin.root / "Aluminum_Camera_Cover" / "test").iterdir()}


# ------------------------------------------------------------------ output folder and arguments

def test_refuses_non_empty_out(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="busy"):
        write_sample(out, categories=["ANI"])
    assert _files(out) == {"keep.txt"}
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FileExistsError, match="afile"):
        write_sample(afile, categories=["ANI"])
    assert not list(tmp_path.glob("*.partial-*"))


def test_empty_out_directory_is_used(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    truth = write_sample(out, categories=["AI"])
    assert truth.root == out
    assert (out / "Aluminum_Ipad" / "train" / "good" / "000000.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        write_sample(tmp_path / "a", scale="huge")
    with pytest.raises(ValueError, match="names"):
        write_sample(tmp_path / "b", names="french")
    with pytest.raises(ValueError, match="seed"):
        write_sample(tmp_path / "c", seed=-1)
    with pytest.raises(UnknownCategoryError):
        write_sample(tmp_path / "d", categories=["nope"])
    assert list(tmp_path.iterdir()) == []


def test_failure_leaves_no_half_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = sample_writer.render_image

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(sample_writer, "render_image", flaky)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_sample(tmp_path / "out", categories=["ANI"])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the larger scale

def test_small_scale_one_category(tmp_path: Path) -> None:
    truth = write_sample(tmp_path / "small", scale="small", categories=["AI"])
    cat = get_category("AI")
    counts = truth.counts("AI")
    plan = SCALE_PLANS["small"]
    assert counts["train"] == plan.train and counts["test_good"] == plan.test_good
    assert counts["test_defect"] >= plan.per_type * cat.defect_types
    assert counts["defect_types"] == cat.defect_types
    assert counts["types_per_defect_image"] == (1, 2)
    assert counts["regions_per_defect_image"][1] <= plan.max_regions
    for t in SAMPLE_TYPES["AI"]:
        assert sum(1 for i in truth.images if i.folder == t) >= plan.per_type
    for img in truth.images:
        assert cat.height[0] <= img.height <= cat.height[1]
        if img.types:
            n, _ = cv2.connectedComponents(_union(truth.root, img), connectivity=8)
            assert n - 1 == img.n_regions
