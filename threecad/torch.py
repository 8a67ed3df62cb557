"""A PyTorch ``Dataset`` of 3CAD images with their union masks, built from the manifest.

The only module of the ``threecad`` package that imports torch (``import threecad`` does not).
Needs the ``model`` extra (``pip install 'threecad[model]'``).

    from torch.utils.data import DataLoader
    from threecad.torch import ThreeCAD, collate

    data = ThreeCAD("/data/3CAD", "ACC", split="test", image_size=256)
    loader = DataLoader(data, batch_size=16, num_workers=4, collate_fn=collate)
    for batch in loader:
        batch.image   # (B, 3, 256, 256) uint8 RGB
        batch.mask    # (B, 1, 256, 256) uint8, 1 inside any defect mask of the image
        batch.label   # (B,) int64, 0 good, 1 defective

Rows come from :func:`threecad.manifest.scan` (masks joined to images by key, every mask file
of an image united), or from any manifest rows (a split of ``threecad split``) through
:meth:`ThreeCAD.from_manifest`. Images are squashed to ``image_size`` x ``image_size`` as the
3CAD protocol does (no crop; the reference models' rule, :func:`threecad.reference_models.images.read_rgb`),
masks with nearest-neighbour resizing. Decoding happens in ``__getitem__``, so in the
DataLoader's worker processes; the dataset holds plain records only and pickles cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataError, UsageError

__all__ = ["ThreeCAD", "Sample", "Batch", "collate", "GOOD", "DEFECT"]

GOOD, DEFECT = 0, 1  # values of ``Sample.label``
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Sample:
    """One image of :class:`ThreeCAD`.

    Attributes
    ----------
    image : Tensor
        ``(3, S, S)`` uint8 RGB (``S = image_size``; the native ``(3, H, W)`` with
        ``image_size=None``), or whatever ``transform`` returns for it.
    mask : Tensor
        ``(1, S, S)`` uint8: 1 where any of the image's defect masks is non-zero, else 0
        (all zeros for a good image).
    label : int
        :data:`GOOD` (0) or :data:`DEFECT` (1).
    defect_types : tuple of str
        English defect type names (empty for a good image).
    image_id : str
        ``<Category>/<split>/<folder>/<stem>``, the key used everywhere in threecad.
    """

    image: Any
    mask: Tensor
    label: int
    defect_types: tuple[str, ...]
    image_id: str


@dataclass
class Batch:
    """Samples collated by :func:`collate`: tensors stacked, names kept as lists.

    Attributes
    ----------
    image : Tensor
        ``(B, 3, S, S)`` (the dtype of the samples' images: uint8 without a transform).
    mask : Tensor
        ``(B, 1, S, S)`` uint8 in {0, 1}.
    label : Tensor
        ``(B,)`` int64.
    defect_types : list of tuple of str
    image_id : list of str
    """

    image: Tensor
    mask: Tensor
    label: Tensor
    defect_types: list[tuple[str, ...]] = field(default_factory=list)
    image_id: list[str] = field(default_factory=list)

    def to(self, device: Any, non_blocking: bool = False) -> "Batch":
        """The batch with its tensors on ``device``."""
        return Batch(self.image.to(device, non_blocking=non_blocking), self.mask.to(device, non_blocking=non_blocking),
                     self.label.to(device, non_blocking=non_blocking), self.defect_types, self.image_id)

    def pin_memory(self) -> "Batch":
        """Page-locked copies of the tensors (called by ``DataLoader(pin_memory=True)``)."""
        return Batch(self.image.pin_memory(), self.mask.pin_memory(), self.label.pin_memory(),
                     self.defect_types, self.image_id)


def collate(samples: Sequence[Sample]) -> Batch:
    """``collate_fn`` for a ``DataLoader`` over :class:`ThreeCAD` (images must share one shape)."""
    if not samples:
        raise ValueError("collate: no samples")
    return Batch(image=torch.stack([s.image for s in samples]), mask=torch.stack([s.mask for s in samples]),
                 label=torch.tensor([s.label for s in samples], dtype=torch.int64),
                 defect_types=[s.defect_types for s in samples], image_id=[s.image_id for s in samples])


@dataclass(frozen=True)
class _Record:
    """What ``__getitem__`` needs of a manifest row (plain values: cheap to pickle to workers)."""

    image_id: str
    image_path: str
    mask_paths: tuple[str, ...]
    label: int
    defect_types: tuple[str, ...]


_COLUMNS = tuple(f.name for f in fields(_Record))


class ThreeCAD(Dataset):
    """The images of one category and split of a 3CAD tree, with union masks and labels.

    Parameters
    ----------
    root : path
        The 3CAD tree (the folder holding the category folders).
    category : str
        A category code, folder name or alias (``"ACC"``, ``"Aluminum_Camera_Cover"``).
    split : {"train", "test"}
    transform : callable, optional
        Applied to the ``(3, S, S)`` uint8 image tensor (e.g. a torchvision transform); the
        mask is not transformed, so use only photometric transforms for segmentation.
    image_size : int or None
        Side ``S`` of the squashed images and masks (default 256, the 3CAD protocol's grid);
        ``None`` keeps each image's native size (a ``DataLoader`` then needs ``batch_size=1``,
        as the sizes differ).

    Raises
    ------
    UsageError
        Unknown split or category, bad ``image_size``, or ``root`` is not a 3CAD tree.
    DataError
        The tree has errors (listed all at once), or the split is empty.

    Notes
    -----
    Item ``i`` is a :class:`Sample`; the order is the manifest's (sorted by ``image_id``).
    ``ThreeCAD.records`` lists the rows; ``len`` the images.
    """

    def __init__(self, root: str | Path, category: str, split: str = "train", *,
                 transform: Callable[[Tensor], Any] | None = None, image_size: int | None = 256) -> None:
        from .manifest import load_manifest

        if split not in SPLITS:
            raise UsageError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if not isinstance(category, str) or not category:
            raise UsageError(f"category must be a category name or code such as 'ACC', got {category!r}")
        manifest = load_manifest(root, categories=[category])
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            raise DataError(f"{root}: no {split} images of {category}")
        self._init(rows, transform, image_size)

    @classmethod
    def from_manifest(cls, rows: Any, *, transform: Callable[[Tensor], Any] | None = None,
                      image_size: int | None = 256) -> "ThreeCAD":
        """A dataset over given manifest rows (a ``DataFrame`` with :data:`threecad.manifest.MANIFEST_COLUMNS`),
        e.g. the ``fit`` split of :func:`threecad.splits.load_split`, or a filtered manifest."""
        missing = [c for c in _COLUMNS if c not in getattr(rows, "columns", ())]
        if missing:
            raise UsageError(f"manifest rows lack the column(s) {', '.join(missing)}")
        self = cls.__new__(cls)
        self._init(rows, transform, image_size)
        return self

    def _init(self, rows: Any, transform: Callable[[Tensor], Any] | None, image_size: int | None) -> None:
        if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
            raise UsageError(f"image_size must be a positive int or None, got {image_size!r}")
        self.image_size = None if image_size is None else int(image_size)
        self.transform = transform
        self.records = [
            _Record(image_id=str(r.image_id), image_path=str(r.image_path),
                    mask_paths=tuple(str(p) for p in r.mask_paths),
                    label=DEFECT if str(r.label) == "defect" else GOOD,
                    defect_types=tuple(str(t) for t in r.defect_types))
            for r in rows.itertuples(index=False)
        ]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        from .reference_models.images import read_rgb

        rec = self.records[index]
        rgb = read_rgb(rec.image_path, self.image_size)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        mask = torch.from_numpy(self._union_mask(rec, rgb.shape[:2]))[None]
        if self.transform is not None:
            image = self.transform(image)
        return Sample(image=image, mask=mask, label=rec.label, defect_types=rec.defect_types, image_id=rec.image_id)

    def _union_mask(self, rec: _Record, shape: tuple[int, int]) -> np.ndarray:
        """``(H, W)`` uint8 in {0, 1}: the union of the image's masks at ``shape``."""
        import cv2

        from .regions import MaskReadError, read_mask

        union = np.zeros(shape, np.uint8)
        for path in rec.mask_paths:
            try:
                m = read_mask(path)
            except MaskReadError as exc:
                raise DataError(str(exc)) from None
            if self.image_size is None and m.shape != shape:
                raise DataError(f"{path}: mask is {m.shape[1]}x{m.shape[0]} but its image {rec.image_path} is "
                                f"{shape[1]}x{shape[0]}")
            m = (m > 0).astype(np.uint8)
            if m.shape != shape:
                m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
            np.maximum(union, m, out=union)
        return union

    def __repr__(self) -> str:
        size = "native size" if self.image_size is None else f"{self.image_size}x{self.image_size}"
        return f"ThreeCAD({len(self)} images, {size})"
