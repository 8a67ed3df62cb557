"""Choosing the device: CUDA when asked and present, else the CPU with a warning."""

from __future__ import annotations

import logging

import torch

from threecad.errors import UsageError

__all__ = ["resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(name: str | None) -> torch.device:
    """The device for ``--device NAME`` (``cuda``, ``cuda:1``, ``cpu``; default ``cuda``).

    A CUDA device that is not available falls back to the CPU, with a warning (never silently).

    Raises
    ------
    UsageError
        ``name`` is not a device torch knows.
    """
    name = (name or "cuda").strip().lower()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {name!r}: use cuda, cuda:N or cpu") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            log.warning("CUDA was asked for (--device %s) but no GPU is usable here; running on the CPU "
                        "(much slower; pass --device cpu to silence this)", name)
            return torch.device("cpu")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise UsageError(f"--device {name}: only cuda and cpu are supported")
    return device
