"""From CFRG's outputs to an anomaly map, computed as the authors' code computes it.

The authors' inference map (``shared/3cad_facts.md``, "The CFRG model") is, per image: for each
of the three scales, ``1 - cos(T, R)`` (not clipped), upsampled to the input size with bilinear
interpolation and ``align_corners=True``; plus the sigmoid of the segmentation output, upsampled
the same way; accumulated into a float64 map and smoothed with SciPy's
``scipy.ndimage.gaussian_filter(map, sigma=4)``. That filter's defaults are a kernel of radius
``int(4 * sigma + 0.5)`` (truncate 4) and the ``reflect`` boundary, which repeats the edge pixel
(``d c b a | a b c d | d c b a``); torch's ``"reflect"`` padding does not (``d c b | a b c d``),
so :func:`gaussian_blur` builds SciPy's boundary itself. Everything runs on the model's device,
in float64 from the accumulation on, and matches SciPy to float64 rounding (a test checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import cosine_distance

__all__ = ["gaussian_kernel", "gaussian_blur", "anomaly_maps"]


def gaussian_kernel(sigma: float, *, truncate: float = 4.0, dtype=torch.float64, device=None) -> Tensor:
    """SciPy's 1-D Gaussian kernel: radius ``int(truncate * sigma + 0.5)``, weights summing to 1.

    Returns
    -------
    Tensor
        ``(2 * radius + 1,)``.
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return (k / k.sum()).to(dtype)


def _reflect_index(n: int, radius: int, device) -> Tensor:
    """Indices of a length-``n`` axis padded by ``radius`` with SciPy's ``reflect`` rule.

    Works for any radius (the pattern repeats with period ``2n``), also wider than the axis.
    """
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def gaussian_blur(x: Tensor, sigma: float, *, truncate: float = 4.0) -> Tensor:
    """``scipy.ndimage.gaussian_filter(x, sigma, truncate=truncate)`` per map, on the tensor's device.

    Separable correlation with :func:`gaussian_kernel` along the rows, then the columns, with
    SciPy's ``reflect`` boundary (the edge pixel repeated). Computed in the tensor's dtype; use
    float64 to match SciPy on a float64 map to rounding.

    Parameters
    ----------
    x : Tensor
        ``(B, 1, H, W)`` float.
    sigma : float
        Standard deviation in pixels; ``<= 0`` returns ``x`` unchanged.

    Returns
    -------
    Tensor
        Same shape and dtype.
    """
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma, truncate=truncate, dtype=x.dtype, device=x.device)
    radius = (k.numel() - 1) // 2
    h, w = x.shape[-2:]
    x = x.index_select(-2, _reflect_index(h, radius, x.device))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = x.index_select(-1, _reflect_index(w, radius, x.device))
    return F.conv2d(x, k.view(1, 1, 1, -1))


def _upsample(x: Tensor, size: int) -> Tensor:
    """Bilinear with ``align_corners=True`` to ``size`` x ``size`` (identity when already that size)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)


def anomaly_maps(out: dict, size: int, sigma: float) -> Tensor:
    """The authors' inference map: the sum over scales of upsampled ``1 - cos(T, R)`` plus the
    upsampled ``sigmoid(logits)``, in float64, then SciPy's Gaussian of ``sigma``.

    Each term is computed in float32 (the network's outputs, upsampled with bilinear
    ``align_corners=True``), then accumulated in float64 in the authors' order (the scales, then
    the segmentation), as their NumPy code does.

    Parameters
    ----------
    out : dict
        :class:`~threecad.reference_models.cfrg.model.CFRG` outputs (``t``, ``r``, ``logits``).
    size : int
        Map side (the input size).
    sigma : float

    Returns
    -------
    Tensor
        ``(B, size, size)`` float64.
    """
    total = None
    for ti, ri in zip(out["t"], out["r"]):
        term = _upsample(cosine_distance(ti, ri).unsqueeze(1), size).double()
        total = term if total is None else total + term
    seg = _upsample(torch.sigmoid(out["logits"].float()), size).double()
    total = seg if total is None else total + seg
    return gaussian_blur(total, sigma).squeeze(1)
