"""``threecad validate``: audit a 3CAD tree before trusting results.

:func:`validate` checks a tree's structure, image/mask pairing, masks, images (complete
and decodable, sizes), counts against the published table, byte-identical duplicates and
train/test leakage, and near-duplicates by perceptual hash, and returns a
:class:`ValidationReport` with every problem found.

Modules: :mod:`.images` (one read per file: sha256, PNG structure, decode, hash),
:mod:`.duplicates` (sha256 groups, multi-index Hamming search), :mod:`.checks` (sizes,
counts, structure notes, download record), :mod:`.report` (report, table rendering).
"""

from __future__ import annotations

from .core import CLOSEST_PAIRS, EXPECT_CHOICES, validate
from .duplicates import CLOSEST_MAX_RADIUS, NEAR_DUPLICATE_THRESHOLD, ClosePair
from .images import HASH_BITS
from .report import ValidationReport, render_table

__all__ = [
    "validate",
    "ValidationReport",
    "ClosePair",
    "render_table",
    "EXPECT_CHOICES",
    "CLOSEST_PAIRS",
    "CLOSEST_MAX_RADIUS",
    "NEAR_DUPLICATE_THRESHOLD",
    "HASH_BITS",
]
