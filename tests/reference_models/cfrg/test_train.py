"""Training: losses go down, checkpoints resume exactly, model selection on validation images."""

from __future__ import annotations

import json

import torch

from threecad.reference_models.cfrg.anomalies import synthesize
from threecad.reference_models.cfrg.checkpoint import load_checkpoint
from threecad.reference_models.cfrg.data import load_images, normalise
from threecad.reference_models.cfrg.losses import total_loss
from threecad.reference_models.cfrg.train import build_model, train_category

CPU = torch.device("cpu")
NO_TEACHER = {"source": "none (untrained)", "pretrained": False}


def test_losses_go_down_on_a_fixed_batch(tiny_config, cs_train_paths):
    torch.manual_seed(0)
    model = build_model(tiny_config, None, CPU).train()
    clean = load_images(cs_train_paths, tiny_config.image_size, device=CPU, workers=0).float() / 255
    aug, mask = synthesize(clean, tiny_config, torch.Generator().manual_seed(0))
    assert mask.sum() > 0
    opt = torch.optim.Adam(model.trainable_parameters(), lr=tiny_config.lr, betas=tiny_config.betas)
    history = []
    for _ in range(4):
        loss, parts = total_loss(model(normalise(aug), normalise(clean)), mask, tiny_config)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"total": float(loss.detach()), **{k: float(v) for k, v in parts.items()}})
    first, last = history[0], history[-1]
    for key in ("total", "ts", "rec", "seg"):
        assert last[key] < first[key], (key, [h[key] for h in history])
    assert last["total"] < 0.97 * first["total"]


def _weights(path):
    return load_checkpoint(path)["model"]


def test_checkpoint_resumes_exactly(tiny_config, cs_train_paths, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=2)  # 3 images: one step per epoch
    kw = dict(device=CPU, teacher_state=None, teacher_info=NO_TEACHER, workers=0, seed=5, category="Copper_Stator")
    straight = train_category(cs_train_paths, tmp_path / "a", cfg, **kw)
    assert straight.steps == 2 and straight.epochs_done == 2
    first = train_category(cs_train_paths, tmp_path / "b", cfg, max_steps=1, **kw)
    assert first.steps == 1 and first.epochs_done == 1
    ckpt = load_checkpoint(tmp_path / "b" / "last.pt")
    assert {"optimizer", "scheduler", "rng", "epoch", "step", "config", "teacher", "model"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["complete"] is False
    resumed = train_category(cs_train_paths, tmp_path / "b", cfg, resume=True, **kw)
    assert resumed.steps == 2 and resumed.epochs_done == 2
    a, b = _weights(tmp_path / "a" / "model.pt"), _weights(tmp_path / "b" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:  # the same computation: equal up to float rounding (bit-equal on one machine)
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=1e-5), k
    log = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    final = load_checkpoint(tmp_path / "a" / "model.pt")
    assert final["selection"]["rule"] == "last" and final["complete"] is True
    assert final["teacher_info"]["pretrained"] is False


def test_validation_selects_without_the_test_set(tiny_config, cs_train_paths, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=2)
    res = train_category(cs_train_paths[:2], tmp_path / "v", cfg, device=CPU, teacher_state=None,
                         teacher_info=NO_TEACHER, val_paths=cs_train_paths[2:], workers=0, category="Copper_Stator")
    sel = res.selection
    assert sel["rule"] == "val_pixel_auroc" and len(sel["history"]) == 2
    assert sel["best_epoch"] in (1, 2) and 0.0 <= sel["best_value"] <= 1.0
    saved = load_checkpoint(tmp_path / "v" / "model.pt")
    assert saved["selection"]["best_epoch"] == sel["best_epoch"] and saved["epoch"] == sel["best_epoch"]


def test_bf16_autocast_and_channels_last_path(tiny_config, monkeypatch):
    """The CUDA recipe's mixed precision and memory format, run with the CPU's bf16 autocast."""
    import threecad.reference_models.cfrg.train as train_mod
    from threecad.reference_models.cfrg.maps import anomaly_maps
    from threecad.reference_models.cfrg.train import make_optimizer, train_step

    monkeypatch.setattr(train_mod, "autocast",
                        lambda device, config: torch.autocast(device_type="cpu", dtype=torch.bfloat16))
    torch.manual_seed(0)
    model = build_model(tiny_config, None, CPU).to(memory_format=torch.channels_last).train()
    opt, _ = make_optimizer(model, tiny_config)
    batch = (torch.rand(2, 3, 64, 64) * 255).to(torch.uint8)
    losses = [float(train_step(model, opt, batch, tiny_config, torch.Generator().manual_seed(0))[0])
              for _ in range(3)]
    assert all(v == v for v in losses) and losses[-1] < losses[0]
    model.eval()
    with torch.no_grad(), train_mod.autocast(CPU, tiny_config):
        out = model(normalise(batch.float() / 255, channels_last=True))
    assert out["t"][0].dtype == torch.bfloat16
    amap = anomaly_maps(out, 64, tiny_config.smooth_sigma)
    assert amap.dtype == torch.float64 and amap.shape == (2, 64, 64) and torch.isfinite(amap).all()
