"""The dataset from the sample: one sample per image, fields and values, incremental updates."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
from PIL import Image

from threecad.categories import get_category


def _by_id(dataset):
    return {s.image_id: s for s in dataset}


def test_one_sample_per_test_image_with_known_values(fo, sample_root, sample_truth, tmp_path):
    from threecad.fiftyone import to_fiftyone

    dataset = to_fiftyone(sample_root, media_dir=tmp_path / "media", name="t-plain")
    truth = {f"{i.category}/test/{i.folder}/{i.stem}": i for i in sample_truth.images if i.split == "test"}
    samples = _by_id(dataset)
    assert set(samples) == set(truth) and len(dataset) == len(truth)
    for iid, want in truth.items():
        s = samples[iid]
        assert (s.category, s.code, s.split, s.stem) == (want.category, want.code, "test", want.stem)
        assert (s.height, s.width) == (want.height, want.width)
        assert (s.metadata.height, s.metadata.width) == (want.height, want.width)
        assert s.n_regions == want.n_regions == len(s.regions.detections)
        assert sorted(d.area for d in s.regions.detections) == sorted(want.region_areas)
        types = [c.label for c in s.defect_types.classifications]
        if want.types:
            assert s.label == "defect" and set(s.tags) >= {"defect", want.code}
            assert sorted(types) == sorted(want.types)
            mask = np.asarray(Image.open(s.ground_truth.mask_path))
            assert mask.shape == (want.height, want.width) and set(np.unique(mask)) <= {0, 255}
            assert int((mask > 0).sum()) == sum(want.region_areas)
            edge = np.asarray(Image.open(s.ground_truth_outline.mask_path))
            scale = min(1.0, 512 / max(mask.shape))
            assert abs(edge.shape[0] - mask.shape[0] * scale) <= 1 and abs(edge.shape[1] - mask.shape[1] * scale) <= 1
            covered = cv2.resize(mask, edge.shape[::-1], interpolation=cv2.INTER_AREA) > 0
            assert set(np.unique(edge)) == {0, 255} and not ((edge > 0) & ~covered).any()
            for d in s.regions.detections:
                assert d.label in want.types
                assert d.size_class in ("small", "medium", "large") and d.tags == [d.size_class]
                x, y, w, h = d.bounding_box
                assert 0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1
        else:
            assert s.label == "good" and types == ["good"] and s.ground_truth is None
            assert s.ground_truth_outline is None
            assert set(s.tags) >= {"good", want.code}
    assert dataset.default_mask_targets == {255: "defect"}
    assert dataset.persistent
    assert dataset.app_config.active_fields.paths == ["ground_truth", "regions", "defect_types"]  # no submission


def test_multi_type_image_gets_a_union_mask_file(fo, sample_root, sample_truth, tmp_path):
    from threecad.fiftyone import to_fiftyone

    multi = next(i for i in sample_truth.images if len(i.mask_folders) > 1)
    dataset = to_fiftyone(sample_root, categories=[multi.code], media_dir=tmp_path / "media", name="t-multi")
    s = next(x for x in dataset if x.image_id == f"{multi.category}/test/{multi.folder}/{multi.stem}")
    assert s.ground_truth.mask_path.startswith(str(tmp_path / "media"))
    mask = np.asarray(Image.open(s.ground_truth.mask_path))
    assert int((mask == 255).sum()) == sum(multi.region_areas)
    assert sorted({d.label for d in s.regions.detections}) <= sorted(multi.types)
    assert set(dataset.distinct("code")) == {multi.code}


def test_update_adds_rebuilds_and_removes_without_duplicates(fo, sample_root, tmp_path):
    from threecad.fiftyone.api import build_view_dataset

    root = tmp_path / "3cad"
    shutil.copytree(sample_root / get_category("CS").folder, root / get_category("CS").folder)
    shutil.copytree(sample_root / get_category("IS").folder, root / get_category("IS").folder)
    media = tmp_path / "media"
    dataset, first = build_view_dataset(root, media_dir=media, name="t-update")
    n = len(dataset)
    ids = set(dataset.values("id"))
    assert first.build.added == n and first.build.unchanged == 0

    dataset, again = build_view_dataset(root, media_dir=media, name="t-update")
    assert (again.build.added, again.build.updated, again.build.removed, again.build.unchanged) == (0, 0, 0, n)
    assert len(dataset) == n and set(dataset.values("id")) == ids
    assert len(set(dataset.values("image_id"))) == n

    # change one mask, remove one good image, add one image
    cs = root / get_category("CS").folder
    mask = next((cs / "ground_truth").rglob("*.png"))
    arr = np.asarray(Image.open(mask)).copy()
    arr[:8, :8] = 255
    Image.fromarray(arr).save(mask)
    goods = sorted((cs / "test" / "good").glob("*.png"))
    goods[0].unlink()
    shutil.copy(goods[1], cs / "test" / "good" / "999999.png")
    dataset, third = build_view_dataset(root, media_dir=media, name="t-update")
    assert (third.build.added, third.build.updated, third.build.removed) == (1, 1, 1)
    assert len(dataset) == n and len(set(dataset.values("image_id"))) == n
    changed = next(s for s in dataset if s.image_id.endswith(f"/{mask.parent.name}/{mask.stem}"))
    assert any(d.bounding_box[0] == 0 and d.bounding_box[1] == 0 for d in changed.regions.detections)

    # a run restricted to one category keeps the other category's samples
    dataset, only = build_view_dataset(root, categories=["CS"], media_dir=media, name="t-update")
    assert only.build.removed == 0 and len(dataset) == n


def test_validation_report_tags_duplicates_and_leakage(fo, sample_root, tmp_path):
    from threecad.fiftyone import to_fiftyone

    leak = next((sample_root / "Copper_Stator" / "test" / "good").glob("*.png"))
    dup = next((sample_root / "Iron_Stator" / "test" / "good").glob("*.png"))
    report = {"root": str(sample_root), "problems": [
        {"kind": "leakage", "severity": "error", "path": str(leak), "message": "x"},
        {"kind": "near_duplicate", "severity": "warning", "path": str(dup.relative_to(sample_root)), "message": "y"},
        {"kind": "missing_mask", "severity": "error", "path": str(leak), "message": "not a flag"},
    ]}
    dataset = to_fiftyone(sample_root, categories=["CS", "IS"], media_dir=tmp_path / "m", name="t-tags",
                          validation=report)
    tags = {s.filepath: set(s.tags) for s in dataset}
    assert "leakage" in tags[str(leak)] and "duplicate" not in tags[str(leak)]
    assert "duplicate" in tags[str(dup)]
    assert sum("leakage" in t or "duplicate" in t for t in tags.values()) == 2


def test_train_split_and_name(fo, sample_root, tmp_path):
    from threecad.fiftyone.build import dataset_name
    from threecad.fiftyone import to_fiftyone

    dataset = to_fiftyone(sample_root, split="train", categories=["CS"], media_dir=tmp_path / "m")
    assert dataset.name == dataset_name(sample_root, "train")
    assert set(dataset.distinct("split")) == {"train"} and set(dataset.distinct("label")) == {"good"}
    assert dataset_name(sample_root, "test") != dataset_name(sample_root, "train")
    assert dataset_name(sample_root, "test") != dataset_name(tmp_path / sample_root.name, "test")


def test_no_array_in_the_database(built):
    dataset, _, _ = built
    doc = dataset._sample_collection.find_one({"label": "defect"})
    assert doc["ground_truth"].get("mask") is None and doc["ground_truth"]["mask_path"]
    assert doc["synthetic_demo_heatmap"].get("map") is None and doc["synthetic_demo_heatmap"]["map_path"]
    assert len(str(doc)) < 20_000


def test_app_config(built):
    dataset, _, _ = built
    cfg = dataset.app_config
    # heatmap, mask outline, the region boxes (labelled by type) and the image's defect types
    assert cfg.active_fields.paths == ["synthetic_demo_heatmap", "ground_truth_outline", "synthetic_demo_regions",
                                       "defect_types"]
    fields = {f["path"]: f for f in cfg.color_scheme.fields}
    for path in ("ground_truth", "ground_truth_outline"):
        assert fields[path]["maskTargetsColors"] == [{"intTarget": 255, "color": "#ff2d2d"}]
    assert "synthetic_demo_heatmap" in fields
    assert {c["path"] for c in cfg.color_scheme.colorscales} == {"synthetic_demo_heatmap"}
    assert fields["synthetic_demo_regions"]["fieldColor"] == fields["regions"]["fieldColor"] == "#ffd400"
    # the legend: the dataset's description and each field's (with the method's full name and the scale)
    assert "Green: the synthetic_demo heatmap" in dataset.description and "Red outline" in dataset.description
    heat = dataset.get_field("synthetic_demo_heatmap").description
    assert heat.startswith("synthetic-demo: anomaly map") and "heatmap: clear <=" in heat
