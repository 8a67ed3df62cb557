"""Training CFRG on one category: synthetic anomalies on the device, bf16 on CUDA, resumable.

Model selection never looks at the test set. With validation images (the ``val`` split of
``threecad split``), the model is scored every ``config.val_every`` epochs and at the end by the
pixel AUROC of its maps against synthetic anomalies painted on those held-out normal images
(a fixed set, seed ``config.val_seed``), and ``model.pt`` is the best one. Without them,
``model.pt`` is the last model.

Files in the output folder: ``model.pt`` (the selected model, what ``threecad predict`` reads),
``last.pt`` (everything needed to resume: model, optimizer, scheduler, epoch, step, RNG states),
``train_log.jsonl`` (one line per epoch).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from threecad.errors import DataError, UsageError

from .anomalies import synthesize
from .checkpoint import (capture_rng, load_checkpoint, plain_scheduler_state, restore_rng,
                         restore_scheduler_state, save_checkpoint)
from .config import CFRGConfig
from .data import load_images, normalise, texture_paths
from .losses import total_loss
from .maps import anomaly_maps
from .model import CFRG

__all__ = ["TrainResult", "train_category", "train_step", "build_model", "model_from_checkpoint", "autocast",
           "make_optimizer"]

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
LAST_FILE = "last.pt"
LOG_FILE = "train_log.jsonl"


@dataclass
class TrainResult:
    """What a training run produced."""

    model_path: Path
    last_path: Path
    epochs_done: int
    steps: int
    seconds: float
    images_per_s: float
    selection: dict[str, Any]
    losses: list[float] = field(default_factory=list)


def autocast(device: torch.device, config: CFRGConfig):
    """bf16 autocast on CUDA (when ``config.amp``); a no-op context on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda" and config.amp)


def build_model(config: CFRGConfig, teacher_state: dict[str, torch.Tensor] | None,
                device: torch.device) -> CFRG:
    """A fresh CFRG on ``device`` (channels-last on CUDA when configured)."""
    model = CFRG(config, teacher_state).to(device)
    if device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model: CFRG, config: CFRGConfig) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.MultiStepLR]:
    """Adam over the trainable parts and the step schedule (per epoch) of the recipe."""
    opt = torch.optim.Adam(model.trainable_parameters(), lr=config.lr, betas=tuple(config.betas))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config.lr_milestones), gamma=config.lr_gamma)
    return opt, sched


def model_from_checkpoint(ckpt: dict[str, Any], device: torch.device) -> tuple[CFRG, CFRGConfig]:
    """Rebuild the model stored in a checkpoint (see :mod:`.checkpoint`), in eval mode."""
    config = CFRGConfig.from_dict(ckpt["config"])
    model = CFRG(config, None)
    state = {**{f"teacher.{k}": v for k, v in ckpt["teacher"].items()}, **ckpt["model"]}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"checkpoint does not match the CFRG model of this threecad version: "
                        f"{str(exc).splitlines()[0]}") from None
    model = model.to(device)
    if device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval(), config


def train_step(model: CFRG, opt: torch.optim.Optimizer, batch: torch.Tensor, config: CFRGConfig,
               gen: torch.Generator, textures: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """One optimiser step: paint anomalies on ``batch``, forward (bf16 on CUDA), three losses, update.

    Parameters
    ----------
    batch : Tensor
        ``(B, 3, S, S)`` uint8 clean images on the model's device.
    gen : torch.Generator
        Draws this step's synthetic anomalies (on the same device).

    Returns
    -------
    (Tensor, dict)
        The total loss (detached) and each loss by name.
    """
    device = batch.device
    channels_last = device.type == "cuda" and config.channels_last
    clean = batch.float() / 255.0
    with torch.no_grad():
        aug, mask = synthesize(clean, config, gen, textures)
    x, xc = normalise(aug, channels_last=channels_last), normalise(clean, channels_last=channels_last)
    with autocast(device, config):
        outputs = model(x, xc)
    loss, parts = total_loss(outputs, mask, config)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), parts


def _step_generator(device: torch.device, seed: int, step: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_919 + epoch))


class _Validator:
    """Pixel AUROC of the model's maps against fixed synthetic anomalies on held-out normal images."""

    def __init__(self, images: torch.Tensor, config: CFRGConfig, device: torch.device,
                 textures: torch.Tensor | None) -> None:
        gen = torch.Generator(device=device).manual_seed(config.val_seed)
        self.batches = []
        for i in range(0, len(images), config.batch_size):
            clean = images[i:i + config.batch_size].float() / 255.0
            aug, mask = synthesize(clean, config, gen, textures)
            self.batches.append((aug.to(torch.float16), mask.to(torch.uint8)))
        self.config, self.device = config, device

    @torch.no_grad()
    def __call__(self, model: CFRG) -> float:
        from threecad.eval.metrics import roc_auc

        was_training = model.training
        model.eval()
        scores, labels = [], []
        for aug, mask in self.batches:
            x = normalise(aug.float(), channels_last=self.device.type == "cuda" and self.config.channels_last)
            with autocast(self.device, self.config):
                out = model(x)
            amap = anomaly_maps(out, self.config.image_size, self.config.smooth_sigma)
            scores.append(amap.cpu().numpy().ravel())
            labels.append(mask.cpu().numpy().ravel())
        model.train(was_training)
        s, lab = np.concatenate(scores), np.concatenate(labels)
        if lab.min() == lab.max():
            return float("nan")
        return float(roc_auc(lab > 0, s))


def train_category(train_paths: Sequence[str | Path], out_dir: str | Path, config: CFRGConfig, *,
                   device: torch.device, teacher_state: dict[str, torch.Tensor] | None, teacher_info: dict,
                   val_paths: Sequence[str | Path] | None = None, dtd: str | Path | None = None,
                   max_steps: int | None = None, resume: bool = False, seed: int = 0,
                   workers: int | None = None, progress: bool = False, category: str = "",
                   resume_epochs: int | None = None, extra_meta: dict | None = None) -> TrainResult:
    """Train one CFRG model.

    Parameters
    ----------
    train_paths : sequence of path
        Normal training images of one category.
    out_dir : path
        Where ``model.pt``, ``last.pt`` and ``train_log.jsonl`` go.
    config : CFRGConfig
    device : torch.device
    teacher_state, teacher_info
        From :func:`reference_models.cfrg.teacher.teacher_state_dict` (ignored when resuming:
        the checkpoint's teacher is used).
    val_paths : sequence of path, optional
        Held-out normal images for model selection (never test images).
    dtd : path, optional
        DTD folder for anomaly textures (else procedural textures).
    max_steps : int, optional
        Stop after this many optimiser steps in total (smoke runs, benchmarks).
    resume : bool
        Continue from ``out_dir/last.pt`` with the checkpoint's config and seed (``config`` and
        ``seed`` are ignored then, except ``resume_epochs``: a new total number of epochs).
    seed : int
        Seeds the epoch orders, the synthetic anomalies and the initial weights.

    Returns
    -------
    TrainResult
    """
    from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not train_paths:
        raise DataError(f"no training images for {category or 'this category'} (train/good is empty)")
    last_path, model_path = out / LAST_FILE, out / MODEL_FILE
    ckpt = None
    if resume:
        if not last_path.is_file():
            raise UsageError(f"--resume: no {LAST_FILE} in {out} to resume from")
        ckpt = load_checkpoint(last_path)
        config = CFRGConfig.from_dict(ckpt["config"]).with_overrides(epochs=resume_epochs)
        seed = int(ckpt["seed"])
        teacher_info = ckpt["teacher_info"]
    elif last_path.exists():
        raise UsageError(f"{out} already holds a training run ({LAST_FILE}); pass --resume to continue it "
                         f"or choose another --out")

    torch.manual_seed(seed)
    model = build_model(config, teacher_state if ckpt is None else None, device)
    opt, sched = make_optimizer(model, config)
    selection: dict[str, Any] = {"rule": "val_pixel_auroc" if val_paths else "last",
                                 "best_epoch": None, "best_value": None, "history": []}
    epoch, step_in_epoch, step = 0, 0, 0
    if ckpt is not None:
        model.load_state_dict({**{f"teacher.{k}": v for k, v in ckpt["teacher"].items()}, **ckpt["model"]})
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(restore_scheduler_state(ckpt["scheduler"]))
        epoch, step_in_epoch, step = int(ckpt["epoch"]), int(ckpt["step_in_epoch"]), int(ckpt["step"])
        selection = ckpt["selection"]
        log.info("resuming %s at epoch %d, step %d", last_path, epoch, step)
    model.train()

    images = load_images(train_paths, config.image_size, device=device, workers=workers, progress=progress,
                         desc=f"decoding {category}".strip())
    textures = None
    if dtd is not None:
        tex_paths = texture_paths(dtd)
        textures = load_images(tex_paths, config.image_size, device=device, workers=workers, progress=progress,
                               desc="decoding DTD textures")
        log.info("synthetic anomalies: %d DTD textures from %s", len(tex_paths), dtd)
    else:
        log.warning("synthetic anomalies: procedural textures, as no DTD folder was given (the paper uses DTD "
                    "textures: 'threecad download --dtd', then --dtd DIR)")
    validator = None
    if val_paths:
        val_images = load_images(val_paths, config.image_size, device=device, workers=workers, progress=progress,
                                 desc="decoding validation")
        validator = _Validator(val_images, config, device, textures)
        log.info("model selection: pixel AUROC on %d held-out validation images with synthetic anomalies, "
                 "every %d epochs", len(val_paths), config.val_every)
    else:
        log.info("model selection: none (no validation split given); the last checkpoint is kept")

    if ckpt is not None:
        restore_rng(ckpt["rng"])  # after the data loaders, which draw their seeds from the global RNG
    n = len(images)
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)

    def payload(resumable: bool) -> dict[str, Any]:
        state = model.state_dict()
        data: dict[str, Any] = {
            "config": config.to_dict(), "seed": seed, "category": category, "teacher_info": teacher_info,
            "teacher": {k.removeprefix("teacher."): v.detach().cpu() for k, v in state.items()
                        if k.startswith("teacher.")},
            "model": {k: v.detach().cpu() for k, v in state.items() if not k.startswith("teacher.")},
            "epoch": epoch, "step_in_epoch": step_in_epoch, "step": step, "selection": selection,
            "complete": epoch >= config.epochs, "meta": dict(extra_meta or {}),
        }
        if resumable:
            data.update(optimizer=opt.state_dict(), scheduler=plain_scheduler_state(sched.state_dict()),
                        rng=capture_rng())
        return data

    def validate_and_select() -> None:
        if validator is None:
            return
        value = validator(model)
        selection["history"].append([epoch, value])
        log.info("epoch %d: validation pixel AUROC %.4f", epoch, value)
        best = selection["best_value"]
        if best is None or (value == value and value > best):
            selection.update(best_epoch=epoch, best_value=value)
            save_checkpoint(model_path, payload(resumable=False))

    start = time.perf_counter()
    seen = 0
    losses: list[float] = []
    stopped = False
    log_fh = open(out / LOG_FILE, "a", encoding="utf-8")
    try:
        while epoch < config.epochs and not stopped:
            order = _epoch_order(n, seed, epoch)
            step_losses: list[torch.Tensor] = []  # kept on the device: no synchronisation per step
            t_epoch = time.perf_counter()
            bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, unit="step", disable=not progress,
                       desc=f"{category} epoch {epoch + 1}/{config.epochs}", leave=False)
            while step_in_epoch < steps_per_epoch:
                if max_steps is not None and step >= max_steps:
                    stopped = True
                    break
                idx = order[step_in_epoch * batch:(step_in_epoch + 1) * batch].to(device)
                loss, parts = train_step(model, opt, images[idx], config, _step_generator(device, seed, step),
                                         textures)
                step_losses.append(torch.stack([loss, parts["ts"], parts["rec"], parts["seg"]]).float())
                step += 1
                step_in_epoch += 1
                seen += len(idx)
                if progress and (step_in_epoch % 10 == 0 or step_in_epoch == steps_per_epoch):
                    rate = seen / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(loss=f"{float(loss):.4f}", img_s=f"{rate:.1f}")
                bar.update()
            bar.close()
            count = len(step_losses)
            table = torch.stack(step_losses).cpu() if count else torch.zeros(0, 4)
            if count and not torch.isfinite(table).all():
                raise DataError(f"{category}: the loss became NaN or infinite in epoch {epoch + 1}; lower the "
                                f"learning rate or check the images")
            losses.extend(table[:, 0].tolist())
            sums = dict(zip(("loss", "ts", "rec", "seg"), table.sum(0).tolist() if count else [0.0] * 4))
            if not stopped:
                sched.step()
                epoch += 1
                step_in_epoch = 0
                record = {"epoch": epoch, "step": step, "lr": opt.param_groups[0]["lr"],
                          **{k: v / max(count, 1) for k, v in sums.items()},
                          "images_per_s": count * batch / max(time.perf_counter() - t_epoch, 1e-9)}
                log_fh.write(json.dumps(record) + "\n")
                log_fh.flush()
                log.info("%s epoch %d/%d: loss %.4f (ts %.4f, rec %.4f, seg %.4f), %.1f images/s", category,
                         epoch, config.epochs, record["loss"], record["ts"], record["rec"], record["seg"],
                         record["images_per_s"])
                if validator is not None and (epoch % config.val_every == 0 or epoch == config.epochs):
                    validate_and_select()
                if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
                    save_checkpoint(last_path, payload(resumable=True))
        if stopped:
            save_checkpoint(last_path, payload(resumable=True))
            log.info("stopped after %d steps (--max-steps); resume with --resume", step)
        if validator is None:
            save_checkpoint(model_path, payload(resumable=False))
        elif selection["best_epoch"] is None or (stopped and not selection["history"]):
            validate_and_select()
    finally:
        log_fh.close()
    elapsed = time.perf_counter() - start
    return TrainResult(model_path=model_path, last_path=last_path, epochs_done=epoch, steps=step, seconds=elapsed,
                       images_per_s=seen / max(elapsed, 1e-9), selection=selection, losses=losses)
