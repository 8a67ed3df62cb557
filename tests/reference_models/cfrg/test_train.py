"""Training: losses go down, the Trainer resumes exactly from its checkpoints, model selection on
validation images, bad checkpoints named."""

from __future__ import annotations

import json

import pytest
import torch

from threecad.errors import DataError, UsageError
from threecad.reference_models.cfrg.anomalies import synthesize
from threecad.reference_models.cfrg.checkpoint import RESUME_KEYS, load_checkpoint
from threecad.reference_models.cfrg.data import load_images, normalise
from threecad.reference_models.cfrg.losses import total_loss
from threecad.reference_models.cfrg.train import Trainer, build_model

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


def _trainer(out, cfg, seed=5):
    return Trainer(out, cfg, device=CPU, teacher_info=NO_TEACHER, workers=0, seed=seed, category="Copper_Stator")


def test_checkpoint_resumes_exactly(tiny_config, cs_train_rows, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=2)  # 3 images: one step per epoch
    straight = _trainer(tmp_path / "a", cfg).fit(cs_train_rows)
    assert straight.steps == 2 and straight.epochs_done == 2
    first = _trainer(tmp_path / "b", cfg).fit(cs_train_rows, max_steps=1)
    assert first.steps == 1 and first.epochs_done == 1
    ckpt = load_checkpoint(tmp_path / "b" / "last.pt", need=RESUME_KEYS)
    assert ckpt["epoch"] == 1 and ckpt["complete"] is False and ckpt["seed"] == 5
    resumed = Trainer.resume(tmp_path / "b", device=CPU, workers=0).fit(cs_train_rows)
    assert resumed.steps == 2 and resumed.epochs_done == 2
    a, b = _weights(tmp_path / "a" / "model.pt"), _weights(tmp_path / "b" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:  # the same computation: equal up to float rounding (bit-equal on one machine)
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=1e-5), k
    log = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    final = load_checkpoint(tmp_path / "a" / "model.pt")
    assert final["selection"]["rule"] == "last" and final["complete"] is True
    assert final["teacher_info"]["pretrained"] is False and final["category"] == "Copper_Stator"


def test_resume_with_more_epochs_continues_the_schedule(tiny_config, cs_train_rows, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=1)
    _trainer(tmp_path / "r", cfg).fit(cs_train_rows)
    more = Trainer.resume(tmp_path / "r", device=CPU, epochs=3, workers=0)
    assert more.config.epochs == 3 and more.state.epoch == 1 and more.state.seed == 5
    result = more.fit(cs_train_rows)
    assert result.epochs_done == 3 and result.steps == 3
    with pytest.raises(RuntimeError, match="once"):
        more.fit(cs_train_rows)


def test_a_new_run_refuses_a_folder_with_a_run_and_resume_needs_one(tiny_config, cs_train_rows, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=1)
    _trainer(tmp_path / "x", cfg).fit(cs_train_rows, max_steps=1)
    with pytest.raises(UsageError, match="--resume"):
        _trainer(tmp_path / "x", cfg)
    with pytest.raises(UsageError, match="no last.pt"):
        Trainer.resume(tmp_path / "empty", device=CPU)
    with pytest.raises(DataError, match="train/good is empty"):
        _trainer(tmp_path / "y", cfg).fit(cs_train_rows.iloc[:0])


def test_resume_refuses_an_incomplete_checkpoint_naming_it(tiny_config, cs_train_rows, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=2)
    _trainer(tmp_path / "c", cfg).fit(cs_train_rows, max_steps=1)
    last = tmp_path / "c" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    del ckpt["optimizer"]
    ckpt["step"] = "one"
    torch.save(ckpt, last)
    with pytest.raises(DataError) as info:
        Trainer.resume(tmp_path / "c", device=CPU)
    assert str(last) in str(info.value) and "'optimizer'" in str(info.value) and "'step'" in str(info.value)


def test_the_trainer_takes_a_threecad_dataset_too(tiny_config, sample_root, tmp_path):
    from threecad.torch import ThreeCAD

    cfg = tiny_config.with_overrides(batch_size=2, epochs=1)
    data = ThreeCAD(sample_root, "CS", split="train", image_size=64)
    result = _trainer(tmp_path / "d", cfg).fit(data)
    assert result.steps == 1 and (tmp_path / "d" / "model.pt").is_file()
    with pytest.raises(ValueError, match="64x64"):
        _trainer(tmp_path / "e", cfg).fit(ThreeCAD(sample_root, "CS", split="train", image_size=32))


def test_validation_selects_without_the_test_set(tiny_config, cs_train_rows, tmp_path):
    cfg = tiny_config.with_overrides(batch_size=2, epochs=2)
    res = _trainer(tmp_path / "v", cfg, seed=0).fit(cs_train_rows.iloc[:2], cs_train_rows.iloc[2:])
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
