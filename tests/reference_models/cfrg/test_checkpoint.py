"""Checkpoints: tensors and plain values only; a pickle with code is refused and never runs."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from threecad.reference_models.cfrg.checkpoint import (capture_rng, load_checkpoint, plain_scheduler_state, restore_rng,
                                              restore_scheduler_state, save_checkpoint)
from threecad.errors import DataError, UsageError


class _Payload:
    """Unpickling this object writes a marker file (stands for any code an attacker would run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran.txt"
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"format": "threecad-cfrg", "model": _Payload(marker)}))
    zipped = tmp_path / "zipped.pt"
    torch.save({"format": "threecad-cfrg", "model": {"w": torch.ones(2)}, "x": _Payload(marker)}, zipped)
    for path in (raw, zipped):
        with pytest.raises(DataError, match="refused") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(UsageError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}}, other)
    with pytest.raises(DataError, match="not a CFRG checkpoint"):
        load_checkpoint(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip nor a pickle")
    with pytest.raises(DataError, match=str(junk)):
        load_checkpoint(junk)


def test_round_trip_of_state_rng_and_scheduler(tmp_path):
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.2)
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    rng = capture_rng()
    want = (torch.rand(3), np.random.rand(3), random.random())
    path = save_checkpoint(tmp_path / "c.pt", {"model": lin.state_dict(), "optimizer": opt.state_dict(),
                                               "scheduler": plain_scheduler_state(sched.state_dict()), "rng": rng,
                                               "config": {"image_size": 64, "betas": [0.5, 0.999]}})
    data = load_checkpoint(path)
    assert data["config"]["betas"] == [0.5, 0.999]
    assert all(torch.equal(lin.state_dict()[k], data["model"][k]) for k in data["model"])
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    opt2.load_state_dict(data["optimizer"])
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, milestones=[9], gamma=0.5)
    sched2.load_state_dict(restore_scheduler_state(data["scheduler"]))
    assert sched2.milestones == sched.milestones and sched2.last_epoch == 1
    restore_rng(data["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]
    assert not list(tmp_path.glob("*.part"))
