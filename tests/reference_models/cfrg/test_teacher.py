"""Teacher weights: torchvision's real loading path (hub cache, no network), a file, or none."""

from __future__ import annotations

import os

import pytest
import torch

from threecad.reference_models.cfrg import teacher as teacher_mod
from threecad.reference_models.cfrg.model import Teacher
from threecad.reference_models.cfrg.teacher import hub_cache_file, imagenet_weights, teacher_state_dict
from threecad.errors import DataError, UsageError


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A self-made wide_resnet50_2 state dict (a local stand-in for the ImageNet file) and its path."""
    from torchvision.models import wide_resnet50_2

    torch.manual_seed(7)
    state = wide_resnet50_2(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "wrn50_2.pth"
    torch.save(state, path)
    return state, path


def _check_layers(state, want):
    t = Teacher(state)
    got = t.state_dict()
    assert torch.equal(got["layer3.5.conv3.weight"], want["layer3.5.conv3.weight"])
    assert torch.equal(got["stem.0.weight"], want["conv1.weight"])
    assert torch.equal(got["stem.1.running_var"], want["bn1.running_var"])


def test_torchvision_hub_cache_path_without_network(standin, tmp_path, monkeypatch):
    want, path = standin
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    cache = hub_cache_file()
    assert cache == tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(imagenet_weights().url)
    cache.parent.mkdir(parents=True)
    os.link(path, cache)
    state, info = teacher_state_dict(None)
    assert info["pretrained"] is True and "IMAGENET1K_V1" in info["source"]
    assert not any(k.startswith(("layer4.", "fc.")) for k in state)
    _check_layers(state, want)


def test_offline_without_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))

    def offline(url, dst, *args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UsageError) as info:
        teacher_state_dict(None)
    msg = str(info.value)
    assert "--teacher-weights FILE" in msg and imagenet_weights().url in msg and str(hub_cache_file()) in msg
    assert "--teacher-weights none" in msg


def test_file_none_and_bad_files(standin, tmp_path, caplog):
    want, path = standin
    state, info = teacher_state_dict(str(path))
    assert info == {"source": str(path), "pretrained": True}
    _check_layers(state, want)
    state, info = teacher_state_dict("none")
    assert state is None and info["pretrained"] is False
    assert any("untrained teacher" in r.getMessage() for r in caplog.records)
    with pytest.raises(UsageError, match="no such file"):
        teacher_state_dict(str(tmp_path / "missing.pth"))
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in want.items() if not k.startswith("layer3.")}, partial)
    with pytest.raises(DataError, match="missing"):
        teacher_state_dict(str(partial))


def test_teacher_file_with_code_is_refused(tmp_path):
    from tests.reference_models.cfrg.test_checkpoint import _Payload

    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload(marker)}, evil)
    with pytest.raises(DataError, match="refused"):
        teacher_state_dict(str(evil))
    assert not marker.exists()
    assert teacher_mod.NO_TEACHER == "none"
