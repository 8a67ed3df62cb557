import numpy as np
import pytest

from threecad.regions import (MaskReadError, label_regions, mask_regions, read_mask, region_labels, size_class)
from tests.conftest import box_mask, write_png


def test_diagonal_touch_is_one_region():
    m = np.zeros((5, 5), np.uint8)
    m[0, 0] = m[1, 1] = m[2, 2] = 1
    m[4, 0] = 1  # separate
    labels, stats = label_regions(m)
    assert len(stats) == 2
    assert sorted(stats[:, 4].tolist()) == [1, 3]
    assert labels[0, 0] == labels[2, 2] != labels[4, 0]


def test_checkerboard_is_one_region_and_gap_separates():
    m = (np.indices((6, 6)).sum(axis=0) % 2 == 0).astype(np.uint8)
    assert len(label_regions(m)[1]) == 1
    m2 = box_mask((10, 10), (0, 0, 3, 3), (0, 4, 3, 7))  # one-column gap
    assert len(label_regions(m2)[1]) == 2


def test_empty_and_full_masks():
    assert len(label_regions(np.zeros((4, 4)))[1]) == 0
    labels, stats = label_regions(np.ones((4, 4)))
    assert stats.tolist() == [[0, 0, 4, 4, 16]]


def test_region_stats_bbox_area_fraction_and_size_classes():
    m = box_mask((300, 400), (0, 0, 10, 10), (50, 50, 82, 82), (100, 200, 300, 400))
    st = mask_regions([m], ["scratch"])
    assert st.n_regions == 3
    by_area = sorted(st.regions, key=lambda r: r.area)
    assert [r.area for r in by_area] == [100, 1024, 40000]
    assert [r.size_class for r in by_area] == ["small", "medium", "large"]
    assert by_area[1].bbox == (50, 50, 32, 32)
    assert by_area[2].bbox == (200, 100, 200, 200)
    assert by_area[0].area_fraction == pytest.approx(100 / 120000)
    assert st.anomalous_pixels == 100 + 1024 + 40000
    assert st.mask_values == (0, 255)


def test_size_class_limits():
    assert size_class(1023) == "small"
    assert size_class(1024) == "medium"
    assert size_class(96 * 96) == "medium"
    assert size_class(96 * 96 + 1) == "large"


def test_union_of_type_masks_and_region_types():
    a = box_mask((20, 20), (0, 0, 5, 5))
    b = box_mask((20, 20), (10, 10, 15, 15), (4, 4, 6, 6))  # the small box touches a's region
    st = mask_regions([a, b], ["dent", "stain"])
    assert st.n_regions == 2
    types = {r.bbox: r.defect_type for r in st.regions}
    assert types[(0, 0, 6, 6)] == "dent"
    assert types[(10, 10, 5, 5)] == "stain"


def test_size_mismatch_is_an_error():
    with pytest.raises(MaskReadError, match="image is 10x10"):
        mask_regions([np.zeros((5, 5))], ["x"], height=10, width=10)
    with pytest.raises(MaskReadError, match="differ in size"):
        mask_regions([np.zeros((5, 5)), np.zeros((6, 5))], ["x", "y"])


def test_read_mask_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(MaskReadError, match="bad.png"):
        read_mask(bad)
    with pytest.raises(MaskReadError, match="not found"):
        read_mask(tmp_path / "none.png")
    rgb = write_png(tmp_path / "rgb.png", np.dstack([box_mask((4, 4), (0, 0, 2, 2))] * 3))
    assert read_mask(rgb).shape == (4, 4)


@pytest.mark.parametrize("seed", range(6))
def test_labels_and_stats_equal_opencv_with_stats(seed):
    import cv2

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
    m = (rng.random((h, w)) < rng.uniform(0.01, 0.7)).astype(rng.choice([np.uint8, np.float32, np.bool_]))
    labels, stats = label_regions(m)
    n, ref_labels, ref_stats, _ = cv2.connectedComponentsWithStats((m > 0).astype(np.uint8), connectivity=8)
    assert np.array_equal(labels, ref_labels)
    assert np.array_equal(stats, ref_stats[1:].astype(np.int64))
    n_only, labels_only = region_labels(m)
    assert n_only == n - 1 and np.array_equal(labels_only, labels)
