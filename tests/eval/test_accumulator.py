import numpy as np
import pytest

from threecad.eval.accumulator import PixelAccumulator
from threecad.eval.metrics import pixel_metrics
from tests.eval.test_metrics import random_case


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int16, np.uint16, np.int8])
@pytest.mark.parametrize("seed", range(6))
def test_accumulator_equals_two_pass_engine(dtype, seed):
    rng = np.random.default_rng(seed)
    maps, masks = random_case(rng, n=5, h=16, w=18, levels=13 if seed % 2 else None)
    if np.dtype(dtype).kind == "f":
        maps = [(m * 3 - 1).astype(dtype) for m in maps]
    else:
        info = np.iinfo(dtype)
        maps = [np.clip(np.round(m * 40 - 20), info.min, info.max).astype(dtype) for m in maps]
    acc = PixelAccumulator()
    for m, g in zip(maps, masks):
        acc.update(g, m)
    got, want = acc.compute(), pixel_metrics(masks, maps)
    assert (got.auroc, got.ap, got.aupro) == pytest.approx((want.auroc, want.ap, want.aupro), abs=1e-9)
    assert got.n_pixels == want.n_pixels and got.n_regions == want.n_regions


def test_merge_and_mixed_dtypes():
    rng = np.random.default_rng(7)
    maps, masks = random_case(rng, n=6)
    mixed = [m.astype(np.float16) if i % 2 else m for i, m in enumerate(maps)]
    a, b = PixelAccumulator(), PixelAccumulator()
    for i, (m, g) in enumerate(zip(mixed, masks)):
        (a if i < 3 else b).update(g, m)
    got = a.merge(b).compute()
    want = pixel_metrics(masks, mixed)
    assert (got.auroc, got.ap, got.aupro) == pytest.approx((want.auroc, want.ap, want.aupro), abs=1e-9)
    assert a.n_images == 6


def test_narrow_maps_use_fixed_memory():
    acc = PixelAccumulator()
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = np.zeros((64, 64), np.uint8)
        g[10:20, 10:20] = 1
        acc.update(g, rng.random((64, 64)).astype(np.float16))
    assert list(acc._narrow) == [np.dtype(np.float16).str] and acc._wide_keys == []
    assert acc._narrow[np.dtype(np.float16).str].size == 65536


def test_negative_zero_equals_zero():
    g = np.array([[1, 0, 0]], np.uint8)
    a = PixelAccumulator()
    a.update(g, np.array([[0.0, -0.0, 1.0]], np.float16))
    b = PixelAccumulator()
    b.update(g, np.array([[0.0, 0.0, 1.0]], np.float16))
    assert a.compute().auroc == b.compute().auroc == pytest.approx(0.25)


def test_accumulator_rejects_bad_maps():
    acc = PixelAccumulator()
    with pytest.raises(ValueError, match="NaN"):
        acc.update(np.zeros((1, 1)), np.array([[np.nan]]))
    with pytest.raises(ValueError, match="equal shape"):
        acc.update(np.zeros((2, 3)), np.zeros((2, 2)))
