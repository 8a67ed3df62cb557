"""Fixtures for the CFRG tests: a tiny configuration (64x64, thin recovery branch) and images.

Without the 'model' extra (torch, torchvision) these tests are not collected.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def tiny_config():
    """CFRG at 64x64 with one block per recovery stage: seconds per step on a CPU."""
    from threecad.reference_models.cfrg.config import CFRGConfig

    return CFRGConfig(image_size=64, batch_size=3, epochs=2, bottleneck_blocks=1, decoder_blocks=(1, 1, 1),
                      recovery_width=1, seg_channels=(32, 32, 32), checkpoint_every=100, val_every=1)


@pytest.fixture
def cs_train_rows(sample_root):
    """The manifest rows of the Copper_Stator train/good images of the tiny sample."""
    from threecad.manifest import load_manifest

    m = load_manifest(sample_root, categories=["CS"])
    return m[(m["split"] == "train") & (m["label"] == "good")].reset_index(drop=True)


@pytest.fixture
def cs_train_paths(cs_train_rows):
    """The Copper_Stator train/good image files of the tiny sample."""
    return cs_train_rows["image_path"].tolist()
