"""Synthetic sample of the 3CAD dataset, in exactly the real layout.

``write_sample(out)`` draws every category's parts (brushed and blasted aluminium shells,
frames and camera covers, copper and iron stators) with realistic defects and writes::

    <out>/<Category>/train/good/NNNNNN.png
    <out>/<Category>/test/good/NNNNNN.png
    <out>/<Category>/test/<defect_type>/NNNNNN.png
    <out>/<Category>/ground_truth/<defect_type>/NNNNNN.png

An image with two defect types lies under its first type's folder and has one mask per type.
The returned :class:`SampleTruth` records what was written, for tests and benchmarks.
"""

from __future__ import annotations

from .catalog import SAMPLE_TYPES, SCALES
from .truth import SampleImage, SampleTruth
from .writer import write_sample

__all__ = ["write_sample", "SampleTruth", "SampleImage", "SAMPLE_TYPES", "SCALES"]
