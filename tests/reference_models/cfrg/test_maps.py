"""The CFRG map is the authors' one: bilinear align_corners=True, float64, SciPy's gaussian_filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from threecad.reference_models.cfrg.maps import anomaly_maps, gaussian_blur, gaussian_kernel

ndimage = pytest.importorskip("scipy.ndimage")


@pytest.mark.parametrize("shape", [(64, 64), (37, 50), (256, 256), (9, 12), (1, 5)])
@pytest.mark.parametrize("sigma", [4.0, 1.5, 0.6])
def test_gaussian_blur_equals_scipy_gaussian_filter(shape, sigma):
    rng = np.random.default_rng(sum(shape))
    maps = rng.random((3, *shape)) * rng.choice([1.0, 1e3], size=(3, 1, 1))
    maps[0, : shape[0] // 2] += 5.0  # a step reaching the border: the boundary rule shows
    got = gaussian_blur(torch.from_numpy(maps)[:, None], sigma)[:, 0].numpy()
    for m, g in zip(maps, got):
        want = ndimage.gaussian_filter(m, sigma=sigma)  # mode="reflect", truncate=4.0
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12 * np.abs(m).max())


def test_boundary_repeats_the_edge_pixel_unlike_torch_reflect():
    x = torch.zeros(1, 1, 1, 40, dtype=torch.float64)
    x[..., 0] = 1.0
    ours = gaussian_blur(x.expand(1, 1, 40, 40).contiguous(), 4.0)[0, 0, 0]
    k = gaussian_kernel(4.0)
    radius = (len(k) - 1) // 2
    # SciPy's reflect: the edge pixel is mirrored into the padding, so it counts twice at the edge
    assert ours[0].item() == pytest.approx(float(k[radius] + k[radius - 1]), rel=1e-12)
    torch_reflect = F.conv1d(F.pad(x[0], (radius, radius), mode="reflect"), k.view(1, 1, -1))[0, 0]
    assert abs(torch_reflect[0].item() - ours[0].item()) > 1e-3
    assert gaussian_blur(x, 0.0) is x


def _bilinear_align_corners(a: np.ndarray, size: int) -> np.ndarray:
    """Brute-force bilinear interpolation with align_corners=True of one (h, w) map."""
    h, w = a.shape
    out = np.empty((size, size))
    for i in range(size):
        y = i * (h - 1) / (size - 1) if size > 1 else 0.0
        y0 = min(int(np.floor(y)), h - 1)
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(size):
            x = j * (w - 1) / (size - 1) if size > 1 else 0.0
            x0 = min(int(np.floor(x)), w - 1)
            x1, fx = min(x0 + 1, w - 1), x - x0
            top = a[y0, x0] * (1 - fx) + a[y0, x1] * fx
            bottom = a[y1, x0] * (1 - fx) + a[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def test_anomaly_map_follows_the_authors_code():
    rng = torch.Generator().manual_seed(0)
    size = 32
    t = [torch.randn(2, c, s, s, generator=rng) for c, s in ((8, 8), (16, 4), (32, 2))]
    r = [ti + 0.8 * torch.randn(ti.shape, generator=rng) for ti in t]
    r[2][0] = -t[2][0]  # cos = -1: 1 - cos = 2, not clipped
    logits = torch.randn(2, 1, 16, 16, generator=rng) * 3
    got = anomaly_maps({"t": t, "r": r, "logits": logits}, size, 4.0)
    assert got.dtype == torch.float64 and got.shape == (2, size, size)
    for b in range(2):
        total = np.zeros((size, size))  # the authors' float64 accumulator
        for ti, ri in zip(t, r):
            a, c = ti[b].double().numpy(), ri[b].double().numpy()
            cos = (a * c).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(c, axis=0))
            total += _bilinear_align_corners(1.0 - cos, size)
        total += _bilinear_align_corners(1.0 / (1.0 + np.exp(-logits[b, 0].double().numpy())), size)
        want = ndimage.gaussian_filter(total, sigma=4)
        np.testing.assert_allclose(got[b].numpy(), want, rtol=0, atol=2e-5)  # float32 network terms
    unclipped = anomaly_maps({"t": t, "r": r, "logits": logits}, size, 0.0)
    assert unclipped[0].max().item() > 2.0  # 1 - cos reached 2 at the coarsest scale
