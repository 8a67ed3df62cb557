"""Synthetic anomalies: Perlin masks, textures (procedural or DTD), determinism."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from threecad.reference_models.cfrg.anomalies import perlin_masks, perlin_noise, procedural_textures, synthesize
from threecad.reference_models.cfrg.config import CFRGConfig
from threecad.reference_models.cfrg.data import load_images, texture_paths


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_perlin_noise_range_and_smoothness():
    res = torch.tensor([[1, 1], [4, 8], [32, 32]])
    n = perlin_noise(3, 128, res, gen(0))
    assert n.shape == (3, 128, 128) and n.abs().max() <= 1.0 + 1e-5
    assert n.std() > 0.1
    # coarser lattices give smoother fields
    rough = [float((f[:, 1:] - f[:, :-1]).abs().mean()) for f in n]
    assert rough[0] < rough[1] < rough[2]


def test_masks_binary_deterministic_and_varied():
    cfg = CFRGConfig()
    a = perlin_masks(16, 64, cfg, gen(1))
    b = perlin_masks(16, 64, cfg, gen(1))
    c = perlin_masks(16, 64, cfg, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert 0.005 < float(a.mean()) < 0.5
    none = perlin_masks(4, 64, CFRGConfig(anomaly_prob=0.0), gen(1))
    assert float(none.sum()) == 0


def test_synthesize_changes_only_masked_pixels():
    cfg = CFRGConfig()
    imgs = torch.rand(6, 3, 64, 64)
    aug, mask = synthesize(imgs, cfg, gen(3))
    aug2, mask2 = synthesize(imgs, cfg, gen(3))
    assert torch.equal(aug, aug2) and torch.equal(mask, mask2)
    outside = mask.expand_as(imgs) == 0
    assert torch.equal(aug[outside], imgs[outside])
    assert float((aug - imgs).abs()[~outside].mean()) > 0.05
    assert aug.min() >= 0 and aug.max() <= 1
    tex = procedural_textures(2, 32, gen(0))
    assert tex.shape == (2, 3, 32, 32) and tex.min() >= 0 and tex.max() <= 1


def test_dtd_textures(tmp_path):
    dtd = tmp_path / "dtd"
    for i, name in enumerate(["banded/banded_0001.jpg", "dotted/dotted_0002.jpg"]):
        p = dtd / "images" / name
        p.parent.mkdir(parents=True)
        Image.fromarray(np.full((50, 70, 3), 60 + 120 * i, np.uint8)).save(p)
    paths = texture_paths(dtd)
    assert [p.name for p in paths] == ["banded_0001.jpg", "dotted_0002.jpg"]
    pool = load_images(paths, 64, device=torch.device("cpu"), workers=0)
    assert pool.shape == (2, 3, 64, 64) and pool.dtype == torch.uint8
    imgs = torch.zeros(4, 3, 64, 64)
    aug, mask = synthesize(imgs, CFRGConfig(beta_max=0.0 + 1e-6), gen(0), pool)
    inside = aug.permute(0, 2, 3, 1)[mask[:, 0] > 0]
    # the painted pixels take the textures' grey values (60 or 180), not the black image
    assert len(inside) and set(np.round(inside[:, 0].numpy() * 255).astype(int).tolist()) <= {60, 180}
