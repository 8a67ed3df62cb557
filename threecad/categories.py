"""The eight 3CAD categories: folder names, codes, published counts and accepted aliases.

Source of every number here: the 3CAD paper (Yang, Xing et al., AAAI 2025,
arXiv 2502.05761), its dataset table (documented in ``docs/dataset.md``).
This module is the only place in the project that knows these facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Category",
    "CATEGORIES",
    "PUBLISHED_TOTAL",
    "UnknownCategoryError",
    "get_category",
    "find_category",
    "category_codes",
    "normalise_name",
]


@dataclass(frozen=True)
class Category:
    """One 3CAD category with the figures of the paper's dataset table.

    Ranges are inclusive ``(min, max)`` pairs. ``regions_per_defect_image`` and
    ``types_per_defect_image`` are per defective test image.
    """

    code: str
    folder: str
    train: int
    test: int
    test_good: int
    test_defect: int
    defect_types: int
    height: tuple[int, int]
    width: tuple[int, int]
    regions_per_defect_image: tuple[int, int]
    types_per_defect_image: tuple[int, int]
    aliases: tuple[str, ...] = ()

    def published_row(self) -> dict[str, object]:
        """The published table row as plain values (ranges as ``[min, max]`` lists)."""
        return {
            "code": self.code,
            "train": self.train,
            "test": self.test,
            "test_good": self.test_good,
            "test_defect": self.test_defect,
            "defect_types": self.defect_types,
            "height": list(self.height),
            "width": list(self.width),
            "regions_per_defect_image": list(self.regions_per_defect_image),
            "types_per_defect_image": list(self.types_per_defect_image),
        }


# Published dataset table (3CAD paper, Table 1 / README). Aliases: spellings seen in the
# authors' scripts (``Aluminum_Middle-Frame``) and older lower-case lists
# (``aluminum_ipad_new``). Case and separators are ignored on top of these.
CATEGORIES: tuple[Category, ...] = (
    Category("ACC", "Aluminum_Camera_Cover", 784, 1446, 369, 1077, 10,
             (288, 1024), (288, 1024), (1, 6), (1, 1)),
    Category("AI", "Aluminum_Ipad", 2096, 2047, 913, 1134, 3,
             (760, 1024), (600, 1024), (1, 10), (1, 2)),
    Category("AMF", "Aluminum_Middle_Frame", 1548, 1479, 731, 748, 5,
             (540, 1024), (800, 950), (1, 9), (1, 4),
             aliases=("Aluminum_Middle-Frame", "aluminum_middle_frame")),
    Category("ANMF", "Aluminum_New_Middle_Frame", 1072, 1406, 670, 736, 6,
             (400, 1024), (430, 1024), (1, 6), (1, 2),
             aliases=("aluminum_middle_frame_new", "Aluminum_New_Middle-Frame")),
    Category("ANI", "Aluminum_New_Ipad", 2233, 4936, 999, 3937, 4,
             (420, 1024), (580, 1024), (1, 23), (1, 2),
             aliases=("aluminum_ipad_new",)),
    Category("AP", "Aluminum_Pc", 1698, 3161, 911, 2250, 14,
             (430, 1024), (409, 1024), (1, 12), (1, 3),
             aliases=("aluminum_pc",)),
    Category("CS", "Copper_Stator", 409, 959, 196, 763, 1,
             (1024, 1024), (1024, 1024), (1, 9), (1, 1)),
    Category("IS", "Iron_Stator", 653, 1112, 295, 817, 4,
             (1024, 1024), (1024, 1024), (1, 12), (1, 2)),
)

# The published "all" row. Defect types add up over categories (types are per category).
PUBLISHED_TOTAL: dict[str, int] = {
    "train": 10493,
    "test": 16546,
    "test_good": 5084,
    "test_defect": 11462,
    "defect_types": 47,
}


class UnknownCategoryError(KeyError):
    """Raised when a name matches none of the eight categories."""

    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(f"{c.code} ({c.folder})" for c in CATEGORIES)
        super().__init__(f"unknown 3CAD category {name!r}; known categories: {known}")

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def normalise_name(name: str) -> str:
    """Lower-case ``name`` and drop separators (``_``, ``-``, spaces, dots)."""
    return re.sub(r"[\s_\-.]+", "", name.strip().lower())


def _build_lookup() -> dict[str, Category]:
    lookup: dict[str, Category] = {}
    for cat in CATEGORIES:
        for name in (cat.code, cat.folder, *cat.aliases):
            key = normalise_name(name)
            other = lookup.get(key)
            if other is not None and other is not cat:  # pragma: no cover - data guard
                raise RuntimeError(f"alias {name!r} names both {other.code} and {cat.code}")
            lookup[key] = cat
    return lookup


_LOOKUP = _build_lookup()


def find_category(name: str) -> Category | None:
    """Return the category that ``name`` names (code, folder or alias), or ``None``."""
    return _LOOKUP.get(normalise_name(name))


def get_category(name: str) -> Category:
    """Return the category that ``name`` names; raise :class:`UnknownCategoryError` if none."""
    cat = find_category(name)
    if cat is None:
        raise UnknownCategoryError(name)
    return cat


def category_codes() -> list[str]:
    """The eight category codes in the paper's order."""
    return [c.code for c in CATEGORIES]
