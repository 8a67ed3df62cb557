import numpy as np
import pytest

from threecad.image_stats import REGION_COLUMNS, compute_image_stats
from threecad.manifest import scan
from tests.conftest import box_mask, write_png

AI = "Aluminum_Ipad"


@pytest.fixture
def small_tree(tree):
    tree.image(AI, "train", "good", "000000")
    tree.image(AI, "test", "good", "000001")
    diag = np.zeros((40, 60), np.uint8)
    diag[[0, 1, 2], [0, 1, 2]] = 255          # one region under 8-connectivity
    diag[10:12, 10:12] = 255                   # a second one
    tree.defect(AI, "scratch", "000002", diag)
    tree.defect(AI, "dent", "000003", box_mask((40, 60), (0, 0, 40, 60)))
    tree.mask(AI, "stain", "000003", box_mask((40, 60), (0, 0, 2, 2)))  # overlaps: still 1 region
    return tree


@pytest.mark.parametrize("workers", [1, 2])
def test_regions_per_image_and_region_table(small_tree, workers):
    res = compute_image_stats(scan(small_tree.root).manifest, workers=workers)
    assert res.problems == []
    imgs = res.images.set_index("image_id")
    assert imgs.loc[f"{AI}/test/scratch/000002", "n_regions"] == 2
    assert imgs.loc[f"{AI}/test/scratch/000002", "anomalous_pixels"] == 7
    assert imgs.loc[f"{AI}/test/dent/000003", "n_regions"] == 1
    assert imgs.loc[f"{AI}/test/dent/000003", "anomalous_fraction"] == pytest.approx(1.0)
    assert imgs.loc[f"{AI}/test/good/000001", "n_regions"] == -1
    assert list(res.regions.columns) == list(REGION_COLUMNS)
    scratch = res.regions[res.regions["stem"] == "000002"].sort_values("area")
    assert scratch["area"].tolist() == [3, 4]
    assert scratch["bbox_w"].tolist() == [3, 2]
    assert set(scratch["size_class"]) == {"small"}
    dent = res.regions[res.regions["stem"] == "000003"]
    assert dent["defect_type"].tolist() == ["dent"] and dent["size_class"].tolist() == ["medium"]  # 2400 px


def test_mask_problems_collected_not_raised(tree):
    tree.defect(AI, "scratch", "000001", box_mask((40, 60), (0, 0, 3, 3)))
    tree.defect(AI, "scratch", "000002", np.zeros((40, 60)))                     # empty mask
    tree.image(AI, "test", "scratch", "000003", size=(40, 60))
    tree.mask(AI, "scratch", "000003", box_mask((20, 20), (0, 0, 3, 3)))          # wrong size
    tree.image(AI, "test", "scratch", "000004")
    bad = tree.root / AI / "ground_truth" / "scratch" / "000004.png"
    bad.write_bytes(b"garbage")                                                    # unreadable
    tree.image(AI, "test", "scratch", "000005")
    m = np.zeros((40, 60), np.uint8)
    m[5:8, 5:8] = 1
    write_png(tree.root / AI / "ground_truth" / "scratch" / "000005.png", m)       # values 0/1
    res = compute_image_stats(scan(tree.root).manifest, workers=2)
    got = sorted((p.kind, p.severity.value) for p in res.problems)
    assert got == [("empty_mask", "error"), ("mask_size_mismatch", "error"),
                   ("mask_values", "warning"), ("unreadable_mask", "error")]
    assert any(p.path == bad.resolve() for p in res.problems)
