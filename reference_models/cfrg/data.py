"""Images for CFRG: decoded and squashed in data-loader worker processes, normalised on the device.

Training images come from the 3CAD :class:`threecad.torch.ThreeCAD` dataset (built from manifest
rows); anomaly textures and the images to predict from :class:`ImageFiles` (paths only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from threecad.errors import UsageError

from ..images import read_rgb
from .config import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ImageFiles", "image_loader", "load_images", "dataset_from_rows", "texture_paths", "normalise",
           "default_workers"]

log = logging.getLogger(__name__)

TEXTURE_SUFFIXES = (".jpg", ".jpeg", ".png")


def default_workers() -> int:
    """Data-loader processes when not given: the CPUs less one, at most 16."""
    import os

    return max(0, min(16, (os.cpu_count() or 1) - 1))


class ImageFiles(Dataset):
    """Image files as ``(uint8 (3, S, S) tensor, index)`` pairs; decoding happens in the worker."""

    def __init__(self, paths: Sequence[str | Path], size: int) -> None:
        self.paths = [str(p) for p in paths]
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        rgb = read_rgb(self.paths[i], self.size)
        return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))), i


def image_loader(paths: Sequence[str | Path], size: int, *, batch_size: int, workers: int | None = None,
                 pin_memory: bool = False) -> DataLoader:
    """A loader over ``paths`` in order: batches of ``(uint8 (B, 3, S, S), indices (B,))``."""
    workers = default_workers() if workers is None else workers
    return DataLoader(ImageFiles(paths, size), batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=False,
                      prefetch_factor=4 if workers > 0 else None)


def dataset_from_rows(rows: Any, size: int) -> Dataset:
    """The :class:`threecad.torch.ThreeCAD` dataset of some manifest rows, squashed to ``size``."""
    from threecad.torch import ThreeCAD

    return ThreeCAD.from_manifest(rows, image_size=size)


def load_images(images: Dataset | Sequence[str | Path], size: int, *, device: torch.device,
                workers: int | None = None, progress: bool = False, desc: str = "decoding") -> Tensor:
    """Decode every image once (in worker processes) into one uint8 tensor on ``device``.

    Parameters
    ----------
    images : Dataset or sequence of path
        A :class:`threecad.torch.ThreeCAD` dataset (its images must be ``size`` x ``size``
        uint8, no transform), or image files (textures).
    size : int

    Returns
    -------
    Tensor
        ``(N, 3, S, S)`` uint8, in the dataset's (or the paths') order.
    """
    from threecad.progress import progress as tqdm  # bars on a terminal, log lines otherwise

    from threecad.torch import ThreeCAD, collate

    if isinstance(images, ThreeCAD):
        if images.image_size != size or images.transform is not None:
            raise ValueError(f"load_images needs a dataset of {size}x{size} images without a transform")
        dataset, collate_fn = images, collate
    else:
        dataset, collate_fn = ImageFiles(images, size), None
    workers = default_workers() if workers is None else workers
    loader = DataLoader(dataset, batch_size=32, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", collate_fn=collate_fn,
                        prefetch_factor=4 if workers > 0 else None)
    out = torch.empty((len(dataset), 3, size, size), dtype=torch.uint8, device=device)
    done = 0
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch in loader:
            pixels = batch.image if collate_fn is not None else batch[0]
            out[done:done + len(pixels)] = pixels.to(device, non_blocking=True)
            done += len(pixels)
            bar.update(len(pixels))
    return out


def texture_paths(dtd_root: str | Path) -> list[Path]:
    """Every texture image under a DTD folder (``dtd/images/<class>/*.jpg``, or any image below)."""
    root = Path(dtd_root).expanduser()
    if not root.is_dir():
        raise UsageError(f"--dtd {root}: no such folder (fetch the textures with 'threecad download --dtd')")
    base = root / "images" if (root / "images").is_dir() else root
    found = sorted(p for p in base.rglob("*") if p.suffix.lower() in TEXTURE_SUFFIXES and p.is_file())
    if not found:
        raise UsageError(f"--dtd {root}: no .jpg/.png texture found (fetch them with 'threecad download --dtd')")
    return found


def normalise(images: Tensor, *, channels_last: bool = False) -> Tensor:
    """ImageNet normalisation of float images in [0, 1].

    Parameters
    ----------
    images : Tensor
        ``(B, 3, S, S)`` float in [0, 1].

    Returns
    -------
    Tensor
        ``(B, 3, S, S)`` float32 (channels-last memory when asked).
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=torch.float32).view(1, 3, 1, 1)
    out = (images.float() - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
