"""The manifest's typed vocabulary: splits, labels and one manifest row.

Defined once here and used by the dataset core. :class:`Split` and :class:`Label` are
:class:`enum.StrEnum` members, so they compare equal to the plain strings (``"train"``,
``"good"``) stored in manifest DataFrames and files: ``Split.TEST == "test"``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

__all__ = ["Split", "Label", "GOOD_FOLDER", "GROUND_TRUTH", "ManifestRow", "MANIFEST_COLUMNS"]


class Split(enum.StrEnum):
    """A split of a category: ``train`` (good images only) or ``test``."""

    TRAIN = "train"
    TEST = "test"


class Label(enum.StrEnum):
    """An image's label: ``good`` or ``defect``."""

    GOOD = "good"
    DEFECT = "defect"


GOOD_FOLDER = "good"
"""The folder of good images under ``train/`` and ``test/`` (and their ``defect_type``)."""
GROUND_TRUTH = "ground_truth"
"""The folder of masks in a category."""


@dataclass(frozen=True)
class ManifestRow:
    """One image of a manifest (a row of :func:`threecad.manifest.scan`'s DataFrame).

    Attributes
    ----------
    image_id : str
        ``<Category>/<split>/<folder>/<stem>``: the key used everywhere.
    category : str
        Canonical category folder name, e.g. ``Aluminum_Ipad``.
    code : str
        Category code, e.g. ``AI``.
    split : Split
    label : Label
    folder : str
        Defect folder name as on disk (``good`` for good images).
    defect_type : str
        English name of ``folder`` (``good`` for good images).
    defect_types : tuple of str
        English names of every defect type of the image (empty for good images).
    n_types : int
        ``len(defect_types)``.
    stem : str
        File name without extension.
    image_path : str
        Absolute path.
    mask_paths : tuple of str
        Absolute paths, one per mask file (the image's own folder's mask first).
    mask_types : tuple of str
        English name of each mask's folder.
    height, width : int
        Image size from the file header (-1 when not read).
    channels : int
        1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); -1 when not read.
    """

    image_id: str
    category: str
    code: str
    split: Split
    label: Label
    folder: str
    defect_type: str
    defect_types: tuple[str, ...]
    n_types: int
    stem: str
    image_path: str
    mask_paths: tuple[str, ...]
    mask_types: tuple[str, ...]
    height: int = -1
    width: int = -1
    channels: int = -1

    def as_tuple(self) -> tuple:
        """The values in :data:`MANIFEST_COLUMNS` order, enums as plain strings."""
        values = tuple(getattr(self, name) for name in MANIFEST_COLUMNS)  # not astuple: it deep-copies
        return (*values[:3], str(self.split), str(self.label), *values[5:])


MANIFEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ManifestRow))
"""The manifest DataFrame's columns, in order (the fields of :class:`ManifestRow`)."""
