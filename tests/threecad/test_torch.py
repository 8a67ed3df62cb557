"""The torch Dataset of 3CAD (threecad.torch.ThreeCAD) and threecad.load.

Images and masks are checked against an independent decoder (Pillow) and the manifest.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from threecad.errors import DataError, UsageError

torch = pytest.importorskip("torch")

from threecad.torch import DEFECT, GOOD, Batch, Sample, ThreeCAD, collate  # noqa: E402


def _pil_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _pil_union(paths, shape):
    union = np.zeros(shape, np.uint8)
    for p in paths:
        with Image.open(p) as im:
            m = np.asarray(im)
        union |= (m.max(axis=2) if m.ndim == 3 else m) > 0
    return union


def test_import_threecad_and_load_do_not_import_torch(sample_root):
    code = ("import sys, threecad\n"
            f"m = threecad.load({str(sample_root)!r})\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "print(len(m))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == sum(1 for _ in sample_root.rglob("*.png")) - sum(
        1 for _ in sample_root.glob("*/ground_truth/*/*.png"))


def test_load_is_the_manifest_one_row_per_image(sample_root):
    import threecad

    m = threecad.load(sample_root, categories=["CS"])
    files = sorted(p for p in (sample_root / "Copper_Stator").glob("*/*/*.png") if p.parts[-3] != "ground_truth")
    assert sorted(m["image_path"]) == sorted(str(p) for p in files)
    assert m["image_id"].is_unique and {"split", "label", "mask_paths", "defect_types"} <= set(m.columns)
    with pytest.raises(UsageError):
        threecad.load(sample_root / "missing")


@pytest.mark.parametrize("split", ["train", "test"])
def test_native_images_and_union_masks_equal_an_independent_decoder(sample_root, split):
    import threecad

    rows = threecad.load(sample_root, categories=["AI"])
    rows = rows[rows["split"] == split].reset_index(drop=True)
    data = ThreeCAD(sample_root, "AI", split=split, image_size=None)
    assert len(data) == len(rows) > 0
    for i, row in rows.iterrows():
        s = data[i]
        assert isinstance(s, Sample) and s.image_id == row.image_id
        rgb = _pil_rgb(row.image_path)
        assert s.image.dtype == torch.uint8 and s.image.shape == (3, *rgb.shape[:2])
        assert np.array_equal(s.image.permute(1, 2, 0).numpy(), rgb)
        assert s.mask.dtype == torch.uint8 and s.mask.shape == (1, *rgb.shape[:2])
        assert np.array_equal(s.mask[0].numpy(), _pil_union(row.mask_paths, rgb.shape[:2]))
        assert s.label == (DEFECT if row.label == "defect" else GOOD)
        assert s.defect_types == tuple(row.defect_types)
        assert (s.mask.sum() > 0) == (s.label == DEFECT)


def test_an_image_with_several_masks_gets_their_union(sample_root):
    import cv2

    import threecad

    m = threecad.load(sample_root)
    multi = m[m["mask_paths"].map(len) >= 2]
    assert not multi.empty, "the tiny sample has images with several defect types"
    row = multi.iloc[0]
    data = ThreeCAD.from_manifest(multi.iloc[:1], image_size=64)
    got = data[0].mask[0].numpy()
    native = _pil_union(row.mask_paths, (row.height, row.width))
    want = cv2.resize(native.astype(np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST)  # nearest commutes with max
    assert np.array_equal(got, want)
    singles = [ThreeCAD.from_manifest(multi.iloc[:1].assign(mask_paths=[(p,)]), image_size=64)[0].mask.sum()
               for p in row.mask_paths]
    assert data[0].mask.sum() >= max(singles) and len(data[0].defect_types) >= 2


def test_dataloader_with_two_workers_and_a_transform(sample_root):
    from torch.utils.data import DataLoader

    data = ThreeCAD(sample_root, "CS", split="test", image_size=32, transform=_to_float)
    again = pickle.loads(pickle.dumps(data))
    assert len(again) == len(data) and again.records == data.records
    loader = DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate)
    ids = []
    for batch in loader:
        assert isinstance(batch, Batch)
        n = len(batch.image_id)
        assert batch.image.shape == (n, 3, 32, 32) and batch.image.dtype == torch.float32
        assert float(batch.image.max()) <= 1.0
        assert batch.mask.shape == (n, 1, 32, 32) and batch.mask.dtype == torch.uint8
        assert batch.label.dtype == torch.int64 and batch.label.shape == (n,)
        assert len(batch.defect_types) == n
        assert batch.to("cpu").image.shape == batch.image.shape
        ids += batch.image_id
    assert ids == [r.image_id for r in data.records]


def _to_float(image):
    return image.float() / 255.0


def test_bad_arguments_and_bad_files_are_clear_errors(sample_root, tmp_path):
    import shutil

    with pytest.raises(UsageError, match="split"):
        ThreeCAD(sample_root, "CS", split="val")
    with pytest.raises(UsageError):
        ThreeCAD(sample_root, "NOPE")
    with pytest.raises(UsageError, match="image_size"):
        ThreeCAD(sample_root, "CS", image_size=0)
    with pytest.raises(UsageError, match="column"):
        ThreeCAD.from_manifest(__import__("pandas").DataFrame({"image_path": ["x.png"]}))
    with pytest.raises(ValueError, match="no samples"):
        collate([])
    root = tmp_path / "copy"
    shutil.copytree(sample_root / "Copper_Stator", root / "Copper_Stator")
    data = ThreeCAD(root, "CS", split="test", image_size=32)
    rec = next(r for r in data.records if r.mask_paths)
    i = data.records.index(rec)
    open(rec.mask_paths[0], "wb").write(b"not a png")
    with pytest.raises(DataError, match=rec.mask_paths[0]):
        data[i]
    open(rec.image_path, "wb").write(b"")
    with pytest.raises(DataError, match=rec.image_path):
        data[i]
