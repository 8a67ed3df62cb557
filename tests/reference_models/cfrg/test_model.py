"""Shapes of every branch; the teacher is frozen and stays in eval mode."""

from __future__ import annotations

import pytest
import torch

from threecad.reference_models.cfrg.config import TEACHER_CHANNELS, CFRGConfig
from threecad.reference_models.cfrg.model import CFRG, Recovery, SegmentationHead, Student, Teacher


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = CFRGConfig(image_size=64, bottleneck_blocks=1, decoder_blocks=(1, 1, 1), recovery_width=1,
                     seg_channels=(32, 32, 32))
    return CFRG(cfg)


def _shapes(feats, b, size):
    return [tuple(f.shape) for f in feats], [(b, c, size // s, size // s) for c, s in zip(TEACHER_CHANNELS, (4, 8, 16))]


def test_branch_shapes(model):
    x = torch.randn(2, 3, 64, 64)
    out = model(x, x.flip(-1))
    for key in ("t", "s", "r", "t_clean"):
        got, want = _shapes(out[key], 2, 64)
        assert got == want, key
    assert tuple(out["logits"].shape) == (2, 1, 64, 64)
    assert torch.equal(out["t_clean"][0], model.teacher(x.flip(-1))[0])


def test_parts_at_another_size():
    x = torch.randn(1, 3, 96, 96)
    feats = Teacher()(x)
    assert _shapes(feats, 1, 96)[0] == _shapes(feats, 1, 96)[1]
    assert [tuple(f.shape) for f in Student()(x)] == [tuple(f.shape) for f in feats]
    rec = Recovery(bottleneck_blocks=1, decoder_blocks=(1, 1, 1), width_factor=1)
    assert [tuple(f.shape) for f in rec(feats)] == [tuple(f.shape) for f in feats]
    assert tuple(SegmentationHead((16, 16, 16))(feats, 96).shape) == (1, 1, 96, 96)


def test_default_recovery_is_the_wide_one():
    cfg = CFRGConfig()
    assert cfg.recovery_width == 2 and cfg.decoder_blocks == (3, 4, 6) and cfg.bottleneck_blocks == 3
    assert cfg.lr == 5e-4 and cfg.betas == (0.5, 0.999) and cfg.batch_size == 32 and cfg.epochs == 50
    assert cfg.lr_milestones == (40, 45) and cfg.lr_gamma == 0.2 and cfg.smooth_sigma == 4.0


def test_teacher_is_frozen_and_stays_in_eval_mode(model, tiny_config):
    from threecad.reference_models.cfrg.losses import total_loss

    model.train()
    assert not model.teacher.training
    assert all(not m.training for m in model.teacher.modules())
    assert model.student.training and model.recovery.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    x = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 8:24, 8:24] = 1
    loss, _ = total_loss(model(x, x * 0.5), mask, tiny_config)
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.student.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.recovery.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.seg.parameters())
    # running statistics of the teacher's BatchNorm did not move in train mode
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {id(p) for p in model.trainable_parameters()}.isdisjoint({id(p) for p in model.teacher.parameters()})
    model.zero_grad(set_to_none=True)
