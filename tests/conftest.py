"""Shared fixtures: hand-built 3CAD trees and the synthetic sample."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


class TreeBuilder:
    """Builds small 3CAD-layout trees image by image, for tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def image(self, category: str, split: str, folder: str, stem: str, *, size=(40, 60),
              channels: int = 1) -> Path:
        h, w = size
        shape = (h, w) if channels == 1 else (h, w, channels)
        arr = np.full(shape, 128, np.uint8)
        return write_png(self.root / category / split / folder / f"{stem}.png", arr)

    def mask(self, category: str, folder: str, stem: str, mask: np.ndarray) -> Path:
        return write_png(self.root / category / "ground_truth" / folder / f"{stem}.png",
                         (np.asarray(mask) > 0).astype(np.uint8) * 255)

    def defect(self, category: str, folder: str, stem: str, mask: np.ndarray, *, channels: int = 1) -> Path:
        mask = np.asarray(mask)
        path = self.image(category, "test", folder, stem, size=mask.shape, channels=channels)
        self.mask(category, folder, stem, mask)
        return path


@pytest.fixture
def tree(tmp_path: Path) -> TreeBuilder:
    """A fresh, empty tree builder under a temporary folder."""
    return TreeBuilder(tmp_path / "3cad")


def box_mask(shape, *boxes) -> np.ndarray:
    """A 0/255 mask with filled boxes ``(y0, x0, y1, x1)`` (end exclusive)."""
    m = np.zeros(shape, np.uint8)
    for y0, x0, y1, x1 in boxes:
        m[y0:y1, x0:x1] = 255
    return m


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The tiny synthetic sample (seed 0), built once per test process: ``(root, truth)``."""
    from threecad.sample import write_sample

    root = tmp_path_factory.mktemp("sample") / "3cad"
    truth = write_sample(root, seed=0, scale="tiny")
    return root, truth


@pytest.fixture(scope="session")
def sample_root(sample) -> Path:
    """Root folder of the tiny sample."""
    return sample[0]


@pytest.fixture(scope="session")
def sample_truth(sample):
    """What the tiny sample holds (``threecad.sample.SampleTruth``)."""
    return sample[1]
