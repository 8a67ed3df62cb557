"""From CFRG's outputs to an anomaly map: recovery discrepancy plus segmentation, Gaussian-smoothed."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import cosine_distance

__all__ = ["gaussian_blur", "anomaly_maps"]


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing on the tensor's device (reflect padding, radius 4 sigma).

    Parameters
    ----------
    x : Tensor
        ``(B, 1, H, W)`` float.

    Returns
    -------
    Tensor
        Same shape and dtype.
    """
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(4 * sigma)))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    k = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


def anomaly_maps(out: dict, size: int, sigma: float) -> Tensor:
    """The inference map: sum over scales of upsampled ``1 - cos(T, R)`` plus ``sigmoid(logits)``,
    then a Gaussian of ``sigma``.

    Parameters
    ----------
    out : dict
        :class:`~reference_models.cfrg.model.CFRG` outputs (``t``, ``r``, ``logits``).
    size : int
        Map side (the input size).
    sigma : float

    Returns
    -------
    Tensor
        ``(B, size, size)`` float32.
    """
    total = torch.sigmoid(out["logits"].float())
    for ti, ri in zip(out["t"], out["r"]):
        d = cosine_distance(ti, ri).unsqueeze(1)
        total = total + F.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)
    return gaussian_blur(total, sigma).squeeze(1)
