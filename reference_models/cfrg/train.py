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
from typing import Any

import numpy as np
import torch

from threecad.errors import DataError, UsageError

from .anomalies import synthesize
from .checkpoint import (RESUME_KEYS, capture_rng, load_checkpoint, plain_scheduler_state,
                         restore_rng, restore_scheduler_state, save_checkpoint)
from .config import CFRGConfig
from .data import dataset_from_rows, load_images, normalise, texture_paths
from .losses import total_loss
from .maps import anomaly_maps
from .model import CFRG

__all__ = ["TrainResult", "TrainState", "Trainer", "train_step", "build_model", "model_from_checkpoint",
           "autocast", "make_optimizer"]

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
        return _roc_auc(lab, s)


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact pixel AUROC (:func:`threecad.eval.metrics.roc_auc`, ``(y_true, y_score)``)."""
    from threecad.eval.metrics import roc_auc

    return float(roc_auc(labels > 0, scores))


@dataclass
class TrainState:
    """What changes while training, besides the weights: saved in every checkpoint, restored on resume.

    Attributes
    ----------
    seed : int
        Seeds the epoch orders, the synthetic anomalies and the initial weights.
    epoch : int
        Epochs completed.
    step_in_epoch : int
        Optimiser steps done in the current (incomplete) epoch.
    step : int
        Optimiser steps done in total.
    selection : dict
        The model-selection rule (``"val_pixel_auroc"`` or ``"last"``), ``best_epoch``,
        ``best_value`` and ``history`` (``[epoch, value]`` pairs).
    """

    seed: int
    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0
    selection: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, seed: int, with_validation: bool) -> "TrainState":
        return cls(seed=seed, selection={"rule": "val_pixel_auroc" if with_validation else "last",
                                         "best_epoch": None, "best_value": None, "history": []})

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "TrainState":
        return cls(seed=int(ckpt["seed"]), epoch=int(ckpt["epoch"]), step_in_epoch=int(ckpt["step_in_epoch"]),
                   step=int(ckpt["step"]), selection=ckpt["selection"])

    def to_checkpoint(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "step": self.step,
                "selection": self.selection}


class Trainer:
    """Trains one CFRG model into ``out_dir``: ``model.pt``, ``last.pt`` and ``train_log.jsonl``.

    ``Trainer(out_dir, config, ...)`` starts a new run (refused when ``out_dir`` already holds
    one); :meth:`Trainer.resume` continues the run saved in ``out_dir/last.pt`` with that
    checkpoint's config, seed, weights, optimiser, scheduler and random states, so that the
    result equals an uninterrupted run. :meth:`fit` trains.

    Parameters
    ----------
    out_dir : path
    config : CFRGConfig
    device : torch.device
    teacher_state : dict, optional
        The teacher's weights (:func:`~threecad.reference_models.cfrg.teacher.teacher_state_dict`);
        ``None``: an untrained teacher (smoke runs).
    teacher_info : dict, optional
        Where the teacher's weights come from (``source``, ``pretrained``), saved in checkpoints.
    seed : int
    category : str
        Category folder name, saved in checkpoints and shown in progress bars.
    meta : dict, optional
        Plain values saved with the checkpoints (e.g. the data root).
    workers : int, optional
        Data-loader processes decoding images (default: the CPUs less one).
    progress : bool
        Progress bars on standard error.
    """

    def __init__(self, out_dir: str | Path, config: CFRGConfig, *, device: torch.device,
                 teacher_state: dict[str, torch.Tensor] | None = None, teacher_info: dict | None = None,
                 seed: int = 0, category: str = "", meta: dict | None = None, workers: int | None = None,
                 progress: bool = False) -> None:
        self.out = Path(out_dir)
        if (self.out / LAST_FILE).exists():
            raise UsageError(f"{self.out} already holds a training run ({LAST_FILE}); pass --resume to continue it "
                             f"or choose another --out")
        self.config, self.device = config, device
        self.teacher_state, self.teacher_info = teacher_state, dict(teacher_info or {})
        self.category, self.meta = category, dict(meta or {})
        self.workers, self.progress = workers, progress
        self.state = TrainState(seed=seed)
        self._checkpoint: dict[str, Any] | None = None  # the one resumed from
        self._started = False

    @classmethod
    def resume(cls, out_dir: str | Path, *, device: torch.device, epochs: int | None = None,
               category: str | None = None, meta: dict | None = None, workers: int | None = None,
               progress: bool = False) -> "Trainer":
        """The run saved in ``out_dir/last.pt``, to be continued by :meth:`fit`.

        ``epochs`` sets a new total number of epochs; everything else comes from the checkpoint
        (``meta`` replaces its meta when given).

        Raises
        ------
        UsageError
            No ``last.pt`` in ``out_dir``.
        DataError
            ``last.pt`` is not a complete, well-formed resumable checkpoint.
        """
        last = Path(out_dir) / LAST_FILE
        if not last.is_file():
            raise UsageError(f"--resume: no {LAST_FILE} in {out_dir} to resume from")
        ckpt = load_checkpoint(last, need=RESUME_KEYS)
        self = cls.__new__(cls)
        self.out, self.device = Path(out_dir), device
        self.config = CFRGConfig.from_dict(ckpt["config"]).with_overrides(epochs=epochs)
        self.teacher_state, self.teacher_info = None, dict(ckpt.get("teacher_info", {}))
        self.category = ckpt.get("category", "") if category is None else category
        self.meta = dict(ckpt.get("meta", {}) if meta is None else meta)
        self.workers, self.progress = workers, progress
        self.state = TrainState.from_checkpoint(ckpt)
        self._checkpoint = ckpt
        self._started = False
        return self

    def fit(self, train: Any, val: Any = None, *, dtd: str | Path | None = None,
            max_steps: int | None = None) -> TrainResult:
        """Train until ``config.epochs`` epochs (or ``max_steps`` optimiser steps in total) are done.

        Parameters
        ----------
        train : DataFrame or ThreeCAD
            The normal training images: manifest rows (e.g. ``train/good`` or the ``fit`` split
            of ``threecad split``), or a :class:`threecad.torch.ThreeCAD` dataset of them.
        val : DataFrame or ThreeCAD, optional
            Held-out normal images for model selection (never test images); ``None``: the
            last model is kept.
        dtd : path, optional
            DTD folder for anomaly textures (else procedural textures).
        max_steps : int, optional
            Stop after this many optimiser steps in total (smoke runs, benchmarks); ``last.pt``
            then continues the run.

        Returns
        -------
        TrainResult
        """
        if self._started:
            raise RuntimeError("Trainer.fit runs once per Trainer (use Trainer.resume to continue a run)")
        self._started = True
        if len(train) == 0:
            raise DataError(f"no training images for {self.category or 'this category'} (train/good is empty)")
        self.out.mkdir(parents=True, exist_ok=True)
        if self._checkpoint is None and not self.state.selection:
            self.state = TrainState.fresh(self.state.seed, val is not None and len(val) > 0)
        self._build()
        images, textures, validator = self._load_data(train, val, dtd)
        if self._checkpoint is not None:
            self._restore_rng()  # after the data loaders, which draw their seeds from the global RNG
        return self._run(images, textures, validator, max_steps)

    def _build(self) -> None:
        """The model, optimiser and scheduler: fresh from the seed, or restored from the checkpoint."""
        torch.manual_seed(self.state.seed)
        ckpt = self._checkpoint
        self.model = build_model(self.config, self.teacher_state if ckpt is None else None, self.device)
        self.opt, self.sched = make_optimizer(self.model, self.config)
        if ckpt is not None:
            try:
                self.model.load_state_dict({**{f"teacher.{k}": v for k, v in ckpt["teacher"].items()},
                                            **ckpt["model"]})
                self.opt.load_state_dict(ckpt["optimizer"])
                self.sched.load_state_dict(restore_scheduler_state(ckpt["scheduler"]))
            except (RuntimeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{self.out / LAST_FILE}: cannot resume from it: the saved model or optimiser "
                                f"does not fit ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                                ) from None
            log.info("resuming %s at epoch %d, step %d", self.out / LAST_FILE, self.state.epoch, self.state.step)
        self.model.train()

    def _restore_rng(self) -> None:
        try:
            restore_rng(self._checkpoint["rng"])
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{self.out / LAST_FILE}: cannot resume from it: malformed random states "
                            f"({type(exc).__name__})") from None

    def _dataset(self, images: Any) -> Any:
        from threecad.torch import ThreeCAD

        return images if isinstance(images, ThreeCAD) else dataset_from_rows(images, self.config.image_size)

    def _load_data(self, train: Any, val: Any, dtd: str | Path | None):
        """Decode the training images (and textures, validation images) once into device memory."""
        def load(data: Any, desc: str) -> torch.Tensor:
            return load_images(data, self.config.image_size, device=self.device, workers=self.workers,
                               progress=self.progress, desc=desc)

        images = load(self._dataset(train), f"decoding {self.category}".strip())
        textures = None
        if dtd is not None:
            tex_paths = texture_paths(dtd)
            textures = load(tex_paths, "decoding DTD textures")
            log.info("synthetic anomalies: %d DTD textures from %s", len(tex_paths), dtd)
        else:
            log.warning("synthetic anomalies: procedural textures, as no DTD folder was given (the paper uses DTD "
                        "textures: 'threecad download --dtd', then --dtd DIR)")
        validator = None
        if val is not None and len(val) > 0:
            validator = _Validator(load(self._dataset(val), "decoding validation"), self.config, self.device,
                                   textures)
            log.info("model selection: pixel AUROC on %d held-out validation images with synthetic anomalies, "
                     "every %d epochs", len(val), self.config.val_every)
        else:
            log.info("model selection: none (no validation split given); the last checkpoint is kept")
        return images, textures, validator

    def _payload(self, resumable: bool) -> dict[str, Any]:
        """A checkpoint of the current model (and, when ``resumable``, of everything to continue)."""
        weights = self.model.state_dict()
        data: dict[str, Any] = {
            "config": self.config.to_dict(), "category": self.category, "teacher_info": self.teacher_info,
            "teacher": {k.removeprefix("teacher."): v.detach().cpu() for k, v in weights.items()
                        if k.startswith("teacher.")},
            "model": {k: v.detach().cpu() for k, v in weights.items() if not k.startswith("teacher.")},
            **self.state.to_checkpoint(), "complete": self.state.epoch >= self.config.epochs,
            "meta": dict(self.meta),
        }
        if resumable:
            data.update(optimizer=self.opt.state_dict(), scheduler=plain_scheduler_state(self.sched.state_dict()),
                        rng=capture_rng())
        return data

    def _validate_and_select(self, validator: "_Validator | None") -> None:
        """Score the model on the validation images; save ``model.pt`` when it is the best so far."""
        if validator is None:
            return
        value = validator(self.model)
        selection = self.state.selection
        selection["history"].append([self.state.epoch, value])
        log.info("epoch %d: validation pixel AUROC %.4f", self.state.epoch, value)
        best = selection["best_value"]
        if best is None or (value == value and value > best):
            selection.update(best_epoch=self.state.epoch, best_value=value)
            save_checkpoint(self.out / MODEL_FILE, self._payload(resumable=False))

    def _run(self, images: torch.Tensor, textures: torch.Tensor | None, validator: "_Validator | None",
             max_steps: int | None) -> TrainResult:
        """The epoch loop, the checkpoints and the final model."""
        state, config = self.state, self.config
        n = len(images)
        batch = min(config.batch_size, n)
        start = time.perf_counter()
        seen, losses, stopped = 0, [], False
        with open(self.out / LOG_FILE, "a", encoding="utf-8") as log_fh:
            while state.epoch < config.epochs and not stopped:
                t_epoch = time.perf_counter()
                table, stopped, done = self._run_epoch(images, textures, batch, max_steps, start, seen)
                seen += done
                losses.extend(table[:, 0].tolist())
                if not stopped:
                    self._end_epoch(table, batch, time.perf_counter() - t_epoch, log_fh, validator)
            if stopped:
                save_checkpoint(self.out / LAST_FILE, self._payload(resumable=True))
                log.info("stopped after %d steps (--max-steps); resume with --resume", state.step)
            if validator is None:
                save_checkpoint(self.out / MODEL_FILE, self._payload(resumable=False))
            elif state.selection["best_epoch"] is None or (stopped and not state.selection["history"]):
                self._validate_and_select(validator)
        elapsed = time.perf_counter() - start
        return TrainResult(model_path=self.out / MODEL_FILE, last_path=self.out / LAST_FILE,
                           epochs_done=state.epoch, steps=state.step, seconds=elapsed,
                           images_per_s=seen / max(elapsed, 1e-9), selection=state.selection, losses=losses)

    def _run_epoch(self, images: torch.Tensor, textures: torch.Tensor | None, batch: int,
                   max_steps: int | None, start: float, seen: int) -> tuple[torch.Tensor, bool, int]:
        """The remaining steps of the current epoch: ``(losses (steps, 4), stopped, images seen)``."""
        from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

        state, config = self.state, self.config
        steps_per_epoch = max(1, len(images) // batch)
        order = _epoch_order(len(images), state.seed, state.epoch)
        step_losses: list[torch.Tensor] = []  # kept on the device: no synchronisation per step
        stopped, done = False, 0
        bar = tqdm(total=steps_per_epoch, initial=state.step_in_epoch, unit="step", disable=not self.progress,
                   desc=f"{self.category} epoch {state.epoch + 1}/{config.epochs}", leave=False)
        while state.step_in_epoch < steps_per_epoch:
            if max_steps is not None and state.step >= max_steps:
                stopped = True
                break
            idx = order[state.step_in_epoch * batch:(state.step_in_epoch + 1) * batch].to(self.device)
            loss, parts = train_step(self.model, self.opt, images[idx], config,
                                     _step_generator(self.device, state.seed, state.step), textures)
            step_losses.append(torch.stack([loss, parts["ts"], parts["rec"], parts["seg"]]).float())
            state.step += 1
            state.step_in_epoch += 1
            done += len(idx)
            if self.progress and (state.step_in_epoch % 10 == 0 or state.step_in_epoch == steps_per_epoch):
                rate = (seen + done) / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{float(loss):.4f}", img_s=f"{rate:.1f}")
            bar.update()
        bar.close()
        table = torch.stack(step_losses).cpu() if step_losses else torch.zeros(0, 4)
        if len(table) and not torch.isfinite(table).all():
            raise DataError(f"{self.category}: the loss became NaN or infinite in epoch {state.epoch + 1}; lower "
                            f"the learning rate or check the images")
        return table, stopped, done

    def _end_epoch(self, table: torch.Tensor, batch: int, seconds: float, log_fh: Any,
                   validator: "_Validator | None") -> None:
        """Scheduler step, log line, validation and ``last.pt`` at the end of a complete epoch."""
        state, config = self.state, self.config
        self.sched.step()
        state.epoch += 1
        state.step_in_epoch = 0
        count = len(table)
        sums = dict(zip(("loss", "ts", "rec", "seg"), table.sum(0).tolist() if count else [0.0] * 4))
        record = {"epoch": state.epoch, "step": state.step, "lr": self.opt.param_groups[0]["lr"],
                  **{k: v / max(count, 1) for k, v in sums.items()},
                  "images_per_s": count * batch / max(seconds, 1e-9)}
        log_fh.write(json.dumps(record) + "\n")
        log_fh.flush()
        log.info("%s epoch %d/%d: loss %.4f (ts %.4f, rec %.4f, seg %.4f), %.1f images/s", self.category,
                 state.epoch, config.epochs, record["loss"], record["ts"], record["rec"], record["seg"],
                 record["images_per_s"])
        if validator is not None and (state.epoch % config.val_every == 0 or state.epoch == config.epochs):
            self._validate_and_select(validator)
        if state.epoch % config.checkpoint_every == 0 or state.epoch == config.epochs:
            save_checkpoint(self.out / LAST_FILE, self._payload(resumable=True))
