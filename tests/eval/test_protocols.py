"""The protocol's settings drive the scoring code: connectivity, size classes, grids, and the
paper protocol's own-folder mask, stored mask values and grid image score."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from skimage.measure import label as sk_label

from threecad.eval.evaluate import image_truth, own_folder_mask, score_image, truth_positives
from threecad.eval.paper import per_image_pro_paper
from threecad.eval.protocols import PROTOCOLS, get_protocol
from threecad.errors import UsageError
from threecad.manifest import scan
from threecad.regions import SIZE_CLASSES, size_class
from tests.conftest import box_mask, write_png

AI = "Aluminum_Ipad"
STANDARD, PAPER = PROTOCOLS["standard"], PROTOCOLS["paper"]


def brute_positives(mask: np.ndarray, connectivity: int, small: int, medium: int):
    """Region areas and classes pixel by pixel with scikit-image (connectivity 1 = 4, 2 = 8)."""
    lab = sk_label(mask > 0, connectivity=1 if connectivity == 4 else 2)
    flat = lab.ravel()
    idx = np.flatnonzero(flat)
    areas = np.bincount(flat)[flat[idx]]
    cls = np.array([0 if a < small else 1 if a <= medium else 2 for a in areas], np.int8)
    return idx, 1.0 / areas, cls, int(lab.max())


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("limits", [(1024, 9216), (3, 10), (1, 1)])
def test_truth_positives_follow_connectivity_and_size_limits(connectivity, limits):
    rng = np.random.default_rng(connectivity + limits[0])
    mask = (rng.random((40, 50)) < 0.3).astype(np.uint8) * 255
    protocol = replace(STANDARD, connectivity=connectivity, small_max_area=limits[0], medium_max_area=limits[1])
    pos = truth_positives(mask, protocol)
    idx, weights, cls, n = brute_positives(mask, connectivity, *limits)
    np.testing.assert_array_equal(pos.flat_index, idx)
    np.testing.assert_array_equal(pos.weights, weights)
    np.testing.assert_array_equal(pos.size_class, cls)
    assert pos.n_regions == n and sum(pos.regions_per_class) == n


def test_diagonal_pixels_are_one_region_with_8_and_two_with_4():
    mask = np.zeros((5, 5), np.uint8)
    mask[1, 1] = mask[2, 2] = 255
    assert truth_positives(mask, STANDARD).n_regions == 1
    assert truth_positives(mask, replace(STANDARD, connectivity=4)).n_regions == 2
    assert per_image_pro_paper(np.arange(25.0).reshape(5, 5), mask, connectivity=4) >= 0


def test_default_size_classes_are_those_of_the_region_statistics():
    areas = np.array([1, 1023, 1024, 5000, 9216, 9217, 10 ** 6])
    got = [SIZE_CLASSES[c] for c in STANDARD.size_classes(areas)]
    assert got == [size_class(int(a)) for a in areas]
    ranges = STANDARD.area_ranges
    for a, name in zip(areas, got):  # the half-open ranges hold each area exactly once
        assert [n for n, (lo, hi) in ranges.items() if lo <= a < hi] == [name]


@pytest.mark.parametrize("bad", [dict(connectivity=6), dict(small_max_area=0),
                                 dict(small_max_area=10, medium_max_area=5), dict(fpr_limit=0.0),
                                 dict(image_label="mask"), dict(image_score="mean"), dict(aupro="binned")])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        replace(STANDARD, **bad)


def test_unknown_protocol_is_a_usage_error():
    with pytest.raises(UsageError, match="standard"):
        get_protocol("mvtec")


@pytest.fixture
def two_type_tree(tree):
    """AI, 64x64: one good image; 000002 filed under scratch with an extra dent mask; 000003 with
    a 0/1-valued mask; 000004 whose only mask is filed under another folder."""
    shape = (64, 64)
    tree.image(AI, "test", "good", "000001", size=shape)
    tree.defect(AI, "scratch", "000002", box_mask(shape, (2, 2, 10, 10)))
    tree.mask(AI, "dent", "000002", box_mask(shape, (40, 40, 60, 60)))
    tree.image(AI, "test", "scratch", "000003", size=shape)
    write_png(tree.root / AI / "ground_truth" / "scratch" / "000003.png", box_mask(shape, (5, 5, 30, 30)) // 255)
    tree.image(AI, "test", "dent", "000004", size=shape)
    tree.mask(AI, "scratch", "000004", box_mask(shape, (1, 1, 5, 5)))
    return tree


def rows_of(root):
    m = scan(root).manifest
    return {r["stem"]: r for r in m[m["split"] == "test"].to_dict("records")}


def test_paper_reads_only_the_own_folder_mask(two_type_tree):
    row = rows_of(two_type_tree.root)["000002"]
    assert own_folder_mask(row).endswith("ground_truth/scratch/000002.png")
    standard, paper = image_truth(row, STANDARD), image_truth(row, PAPER)
    assert standard.positives.n_regions == 2 and len(standard.mask_sha256) == 2
    assert paper.positives.n_regions == 1 and len(paper.mask_sha256) == 1
    # the own mask (rows 2..9, columns 2..9 of 64) on the 256 grid: rows and columns 8..39
    expected = np.zeros((256, 256), bool)
    expected[8:40, 8:40] = True
    np.testing.assert_array_equal(paper.positives.flat_index, np.flatnonzero(expected))


def test_paper_takes_a_zero_one_mask_as_empty(two_type_tree, caplog):
    row = rows_of(two_type_tree.root)["000003"]
    assert image_truth(row, STANDARD).positives.flat_index.size == 25 * 25
    with caplog.at_level(logging.WARNING, logger="threecad.eval.paper"):
        paper = image_truth(row, PAPER)
    assert paper.positives.flat_index.size == 0 and paper.label == 0 and paper.problem is None
    assert "below 128" in caplog.text


def test_paper_refuses_an_image_without_an_own_folder_mask(two_type_tree):
    row = rows_of(two_type_tree.root)["000004"]
    assert image_truth(row, STANDARD).problem is None
    problem = image_truth(row, PAPER).problem
    assert problem is not None and "ground_truth/dent/000004.png" in problem.message


def test_paper_image_score_is_the_max_of_the_grid_map(two_type_tree):
    row = rows_of(two_type_tree.root)["000002"]
    amap = np.zeros((512, 512))
    amap[0, 0] = 10.0  # a single-pixel peak that bilinear downsampling to 256 averages away
    truth = image_truth(row, PAPER)
    scored, on_grid = score_image(amap, truth, None, "", PAPER)
    assert on_grid.shape == (256, 256) and scored.score == on_grid.max() < 10.0
    assert score_image(amap, image_truth(row, STANDARD), None, "", STANDARD)[0].score == 10.0
    assert score_image(amap, truth, 0.25, "", PAPER)[0].score == 0.25  # scores.csv wins


def test_the_image_label_rule_is_read_from_the_protocol(two_type_tree):
    row = rows_of(two_type_tree.root)["000003"]  # defective by folder, 0/1 mask
    assert image_truth(row, PAPER).label == 0
    assert image_truth(row, replace(PAPER, image_label="folder")).label == 1
    good = rows_of(two_type_tree.root)["000001"]
    assert image_truth(good, replace(STANDARD, image_label="resized_mask")).label == 0


def test_standard_settings_as_recorded_are_unchanged():
    """results.json of the standard protocol records exactly these settings."""
    assert STANDARD.to_dict() == {
        "name": "standard", "grid": "native",
        "map_resize": "bilinear when the size differs: in float32 for float32 and narrower maps, in float64 otherwise",
        "mask_resize": "none", "image_label": "folder",
        "image_score": "scores.csv, else max of the map as submitted", "aupro": "mvtec", "fpr_limit": 0.3,
        "pro_thresholds": None, "connectivity": 8, "small_max_area": 1024, "medium_max_area": 9216}
