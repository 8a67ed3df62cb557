"""What :func:`threecad.sample.write_sample` wrote: one record per image, and summary counts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..categories import get_category
from ..schema import Split

__all__ = ["SampleImage", "SampleTruth"]


@dataclass(frozen=True)
class SampleImage:
    """One written image.

    Attributes
    ----------
    category, code : str
        The category's folder name and code.
    split : str
        ``train`` or ``test``.
    folder : str
        The folder the image lies in, as written on disk: ``good`` or the (English or Pinyin)
        name of its first defect type.
    types : tuple of str
        English defect types (empty for a good image); one mask per type.
    stem : str
        Six-digit file name without extension.
    height, width, channels : int
        Image size and number of channels (1 grey, 3 RGB).
    n_regions : int
        Number of regions (8-connected components of the union of the image's masks).
    region_areas : tuple of int
        Pixel count of each region.
    mask_folders : tuple of str
        ``ground_truth`` sub-folder of each type's mask, as written (same order as ``types``).
    same_part_as : str
        For a distinct shot of another image's part, that image's :attr:`path`; else ``""``.
    """

    category: str
    code: str
    split: str
    folder: str
    types: tuple[str, ...]
    stem: str
    height: int
    width: int
    n_regions: int
    region_areas: tuple[int, ...]
    channels: int
    mask_folders: tuple[str, ...] = ()
    same_part_as: str = ""

    @property
    def path(self) -> str:
        """The image's path relative to the sample root (POSIX separators)."""
        return f"{self.category}/{self.split}/{self.folder}/{self.stem}.png"

    @property
    def mask_paths(self) -> tuple[str, ...]:
        """Paths of the image's masks relative to the sample root, one per type."""
        return tuple(f"{self.category}/ground_truth/{f}/{self.stem}.png" for f in self.mask_folders)


@dataclass(frozen=True)
class SampleTruth:
    """Everything a sample holds, for checking statistics against.

    Attributes
    ----------
    root : pathlib.Path
        The sample's root folder.
    seed : int
    scale : str
    names : str
        ``english`` or ``pinyin`` defect folder names.
    images : tuple of SampleImage
        Every image, category by category (paper order), train before test.
    """

    root: Path
    seed: int
    scale: str
    names: str
    images: tuple[SampleImage, ...]

    def codes(self) -> tuple[str, ...]:
        """Codes of the categories written, in paper order."""
        return tuple(dict.fromkeys(i.code for i in self.images))

    def of(self, category: str) -> tuple[SampleImage, ...]:
        """The images of one category (code, folder name or alias)."""
        code = get_category(category).code
        return tuple(i for i in self.images if i.code == code)

    def counts(self, code: str) -> dict[str, object]:
        """Figures of one category in the shape of the published table row.

        Returns
        -------
        dict
            ``train``, ``test``, ``test_good``, ``test_defect``, ``defect_types`` (distinct English
            types among test images), ``height`` and ``width`` as ``(min, max)`` over train and
            test, ``regions_per_defect_image`` and ``types_per_defect_image`` as ``(min, max)``
            over defective images (``None`` when there are none).

        Raises
        ------
        KeyError
            When the category is not part of the sample.
        """
        images = self.of(code)
        if not images:
            raise KeyError(f"category {code!r} is not part of this sample")
        test = [i for i in images if i.split == Split.TEST]
        defect = [i for i in test if i.types]

        def span(values: list[int]) -> tuple[int, int] | None:
            return (min(values), max(values)) if values else None

        return {
            "train": sum(1 for i in images if i.split == Split.TRAIN),
            "test": len(test),
            "test_good": len(test) - len(defect),
            "test_defect": len(defect),
            "defect_types": len({t for i in test for t in i.types}),
            "height": span([i.height for i in images]),
            "width": span([i.width for i in images]),
            "regions_per_defect_image": span([i.n_regions for i in defect]),
            "types_per_defect_image": span([len(i.types) for i in defect]),
        }
