"""Synthetic anomalies for training: Perlin-noise masks filled with textures, on the device.

Vectorised over the batch (no Python loop over images) and deterministic for a
``torch.Generator``: the same seed gives the same masks, textures and blends, on the same device.
Textures come from a pool of DTD images (``threecad download --dtd``) when one is given, else
from a procedural generator (coloured multi-octave Perlin noise plus stripes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import CFRGConfig

__all__ = ["perlin_noise", "perlin_masks", "procedural_textures", "synthesize"]


def _fade(t: Tensor) -> Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(batch: int, size: int, res: Tensor, gen: torch.Generator) -> Tensor:
    """2-D gradient (Perlin) noise, one field per item, each with its own lattice.

    Parameters
    ----------
    batch : int
    size : int
        Output side S.
    res : Tensor
        ``(B, 2)`` integer lattice cells per axis (y, x), each >= 1, on the generator's device.
    gen : torch.Generator

    Returns
    -------
    Tensor
        ``(B, S, S)`` float32, roughly in [-1, 1].
    """
    device = res.device
    g = int(res.max().item()) + 1
    angles = torch.rand(batch, g * g, generator=gen, device=device) * (2 * math.pi)
    grads = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)              # (B, G*G, 2)
    pos = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    y = pos[None, :] * res[:, :1].float()                                             # (B, S)
    x = pos[None, :] * res[:, 1:].float()
    y0, x0 = y.floor().long(), x.floor().long()
    fy, fx = y - y0, x - x0
    corners = {}
    for dy in (0, 1):
        for dx in (0, 1):
            idx = (y0 + dy)[:, :, None] * g + (x0 + dx)[:, None, :]                     # (B, S, S)
            gr = grads.gather(1, idx.reshape(batch, -1, 1).expand(-1, -1, 2)).reshape(batch, size, size, 2)
            corners[dy, dx] = gr[..., 0] * (fy - dy)[:, :, None] + gr[..., 1] * (fx - dx)[:, None, :]
    wy, wx = _fade(fy)[:, :, None], _fade(fx)[:, None, :]
    top = corners[0, 0] + wx * (corners[0, 1] - corners[0, 0])
    bottom = corners[1, 0] + wx * (corners[1, 1] - corners[1, 0])
    return math.sqrt(2.0) * (top + wy * (bottom - top))


def _rotate(fields: Tensor, gen: torch.Generator, max_degrees: float = 90.0) -> Tensor:
    """Rotate each ``(B, 1, S, S)`` field by its own random angle in (-max, max) degrees."""
    b = fields.shape[0]
    theta = (torch.rand(b, generator=gen, device=fields.device) * 2 - 1) * math.radians(max_degrees)
    c, s = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(c)
    mat = torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(mat, list(fields.shape), align_corners=False)
    return F.grid_sample(fields, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def perlin_masks(batch: int, size: int, config: CFRGConfig, gen: torch.Generator) -> Tensor:
    """Binary anomaly masks: rotated Perlin noise thresholded at ``config.perlin_threshold``.

    Returns
    -------
    Tensor
        ``(B, 1, S, S)`` float32 in {0, 1}; a share ``1 - anomaly_prob`` of them are empty.
    """
    device = gen.device
    res = 2 ** torch.randint(0, config.perlin_scale_max, (batch, 2), generator=gen, device=device)
    noise = _rotate(perlin_noise(batch, size, res, gen).unsqueeze(1), gen)
    masks = (noise > config.perlin_threshold).float()
    keep = (torch.rand(batch, generator=gen, device=device) < config.anomaly_prob).float()
    return masks * keep[:, None, None, None]


def procedural_textures(batch: int, size: int, gen: torch.Generator) -> Tensor:
    """Random colourful textures (no data needed): multi-octave Perlin noise per channel plus stripes.

    Returns
    -------
    Tensor
        ``(B, 3, S, S)`` float32 in [0, 1].
    """
    device = gen.device
    tex = torch.zeros(batch * 3, size, size, device=device)
    for octave in range(1, 6):
        res = torch.full((batch * 3, 2), 2 ** octave, device=device, dtype=torch.long)
        tex += perlin_noise(batch * 3, size, res, gen) / octave
    tex = tex.reshape(batch, 3, size, size)
    base = torch.rand(batch, 3, 1, 1, generator=gen, device=device)
    amp = 0.2 + 0.5 * torch.rand(batch, 1, 1, 1, generator=gen, device=device)
    pos = torch.arange(size, device=device, dtype=torch.float32) / size
    angle = torch.rand(batch, generator=gen, device=device) * math.pi
    freq = 4 + 28 * torch.rand(batch, generator=gen, device=device)
    phase = torch.rand(batch, generator=gen, device=device) * 2 * math.pi
    proj = pos[None, :, None] * torch.sin(angle)[:, None, None] + pos[None, None, :] * torch.cos(angle)[:, None, None]
    stripes = torch.sin(2 * math.pi * freq[:, None, None] * proj + phase[:, None, None]).unsqueeze(1)
    stripe_amp = 0.3 * torch.rand(batch, 1, 1, 1, generator=gen, device=device)
    return (base + amp * tex + stripe_amp * stripes).clamp(0, 1)


def synthesize(images: Tensor, config: CFRGConfig, gen: torch.Generator,
               textures: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Paint synthetic anomalies onto a batch of clean images.

    Inside each mask, the image becomes ``beta * image + (1 - beta) * texture`` with ``beta``
    uniform in ``[0, config.beta_max)`` per image; outside it is unchanged.

    Parameters
    ----------
    images : Tensor
        ``(B, 3, S, S)`` float in [0, 1] (before normalisation), on the generator's device.
    config : CFRGConfig
    gen : torch.Generator
    textures : Tensor, optional
        ``(N, 3, S, S)`` uint8 texture pool (DTD) on the same device; ``None``: procedural.

    Returns
    -------
    (Tensor, Tensor)
        Augmented images ``(B, 3, S, S)`` float in [0, 1] and masks ``(B, 1, S, S)`` in {0, 1}.
    """
    b, _, h, w = images.shape
    if h != w:
        raise ValueError(f"square images expected, got {h}x{w}")
    masks = perlin_masks(b, h, config, gen)
    if textures is not None and len(textures):
        pick = torch.randint(0, len(textures), (b,), generator=gen, device=gen.device)
        tex = textures[pick].to(images.dtype) / 255.0
        if tex.shape[-1] != h:
            tex = F.interpolate(tex, size=(h, w), mode="bilinear", align_corners=False)
        flip = torch.rand(b, 1, 1, 1, generator=gen, device=gen.device) < 0.5
        tex = torch.where(flip, tex.flip(-1), tex)
    else:
        tex = procedural_textures(b, h, gen).to(images.dtype)
    beta = torch.rand(b, 1, 1, 1, generator=gen, device=gen.device) * config.beta_max
    painted = beta * images + (1 - beta) * tex
    masks = masks.to(images.dtype)
    return images * (1 - masks) + painted * masks, masks
