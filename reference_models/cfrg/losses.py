"""CFRG's three losses (weight 1 each by default)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import CFRGConfig
from .model import cosine_distance

__all__ = ["ts_loss", "recovery_loss", "seg_loss", "total_loss"]

_EPS = 1e-6


def ts_loss(t: list[Tensor], s: list[Tensor], mask: Tensor) -> Tensor:
    """Teacher-student cosine loss on the augmented image, summed over scales.

    On normal pixels the student is pulled to the teacher (mean of ``1 - cos``); on synthetic
    anomaly pixels it is pushed apart (mean of ``max(cos, 0)``: at least orthogonal). The mask is
    brought to each scale by area averaging, so boundary cells count in proportion.

    Parameters
    ----------
    t, s : list of Tensor
        Three ``(B, C_i, H_i, W_i)`` maps each.
    mask : Tensor
        ``(B, 1, S, S)`` in [0, 1].
    """
    total = torch.zeros((), device=mask.device)
    for ti, si in zip(t, s):
        m = F.adaptive_avg_pool2d(mask.float(), ti.shape[-2:]).squeeze(1)
        d = cosine_distance(ti, si)
        normal = ((1 - m) * d).sum() / ((1 - m).sum() + _EPS)
        anomalous = (m * (1 - d).clamp(min=0)).sum() / (m.sum() + _EPS)
        total = total + normal + anomalous
    return total


def recovery_loss(t_clean: list[Tensor], r: list[Tensor]) -> Tensor:
    """Recovery cosine loss: mean ``1 - cos`` between the recovered features of the augmented image
    and the teacher's features of the clean image, summed over scales."""
    return sum(cosine_distance(tc, ri).mean() for tc, ri in zip(t_clean, r))


def seg_loss(logits: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of the segmentation logits ``(B, 1, S, S)`` against the mask."""
    return F.binary_cross_entropy_with_logits(logits.float(), mask.float())


def total_loss(out: dict, mask: Tensor, config: CFRGConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of the three losses, and each of them (detached) by name."""
    parts = {"ts": ts_loss(out["t"], out["s"], mask), "rec": recovery_loss(out["t_clean"], out["r"]),
             "seg": seg_loss(out["logits"], mask)}
    total = config.w_ts * parts["ts"] + config.w_rec * parts["rec"] + config.w_seg * parts["seg"]
    return total, {k: v.detach() for k, v in parts.items()}
