"""``threecad validate``: audit a 3CAD tree before trusting results.

:func:`validate` checks a tree's structure, image/mask pairing, masks, images (complete
and decodable, sizes), counts against the published table, byte-identical duplicates and
train/test leakage, and copies that are not byte-identical (perceptual-hash candidates
confirmed pixel by pixel after alignment), and returns a
:class:`ValidationReport` with every problem found.

Modules: :mod:`.images` (one read per file: sha256, PNG structure, decode, hash),
:mod:`.duplicates` (sha256 groups, candidate pairs, multi-index Hamming search),
:mod:`.pixels` (thumbnails, alignment, the copy decision), :mod:`.checks` (sizes,
counts, structure notes, download record), :mod:`.report` (report, table rendering).
"""

from __future__ import annotations

from .core import CLOSEST_PAIRS, EXPECT_CHOICES, validate
from .duplicates import CLOSEST_MAX_RADIUS, CLOSEST_RADIUS, ClosePair
from .images import HASH_BITS
from .pixels import COPY_MAX_PEAK, COPY_MAX_RESIDUAL, PixelMatch
from .report import ValidationReport, render_table

__all__ = [
    "validate",
    "ValidationReport",
    "ClosePair",
    "render_table",
    "EXPECT_CHOICES",
    "CLOSEST_PAIRS",
    "CLOSEST_MAX_RADIUS",
    "CLOSEST_RADIUS",
    "COPY_MAX_RESIDUAL",
    "COPY_MAX_PEAK",
    "PixelMatch",
    "HASH_BITS",
]
