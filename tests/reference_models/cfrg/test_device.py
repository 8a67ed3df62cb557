"""Device choice: a missing GPU falls back to the CPU with a warning."""

from __future__ import annotations

import logging

import pytest
import torch

from threecad.reference_models.cfrg.device import resolve_device
from threecad.errors import UsageError


def test_missing_gpu_falls_back_to_cpu_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        dev = resolve_device("cuda")
    assert dev == torch.device("cpu")
    assert any("CUDA" in r.getMessage() and "CPU" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)


def test_cpu_is_quiet_and_bad_names_are_usage_errors(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_device("cpu") == torch.device("cpu")
    assert not caplog.records
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("gpu-please")
    with pytest.raises(UsageError, match="only cuda and cpu"):
        resolve_device("meta")
