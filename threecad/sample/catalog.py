"""Fixed choices of the sample generator: defect types, colour modes and scale plans.

The categories' real figures (sizes, region and type ranges) come from
:mod:`threecad.categories`; this module only holds what the generator itself decides.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SCALES",
    "NAME_MODES",
    "SAMPLE_TYPES",
    "CHANNELS",
    "ScalePlan",
    "SCALE_PLANS",
]

SCALES: tuple[str, ...] = ("tiny", "demo", "small")
"""Sample scales, smallest first."""

NAME_MODES: tuple[str, ...] = ("english", "pinyin")
"""How defect folders are named on disk."""

# Exactly ``Category.defect_types`` English names per category (47 in all), each one known to
# ``threecad.labels.LabelMap`` and having a Pinyin term. Chosen to suit the part.
SAMPLE_TYPES: dict[str, tuple[str, ...]] = {
    "ACC": ("scratch", "dent", "bump", "pit", "stain", "edge_chipping", "abrasion",
            "paint_loss", "burr", "foreign_matter"),
    "AI": ("scratch", "dent", "stain"),
    "AMF": ("scratch", "dent", "edge_chipping", "burr", "stain"),
    "ANMF": ("scratch", "dent", "abrasion", "sand_hole", "stain", "edge_chipping"),
    "ANI": ("bump", "scratch", "dent", "stain"),
    "AP": ("scratch", "scrape", "abrasion", "dent", "press_mark", "pit", "bump", "protrusion",
           "stain", "oil_stain", "sand_hole", "black_spot", "white_spot", "paint_loss"),
    "CS": ("broken_wire",),
    "IS": ("inner_warped_sheet", "outer_warped_sheet", "scratch", "rust"),
}

# Colour mode per category: 1 = grey PNG, 3 = RGB PNG.
CHANNELS: dict[str, int] = {
    "ACC": 3, "AI": 1, "AMF": 1, "ANMF": 3, "ANI": 1, "AP": 3, "CS": 3, "IS": 1,
}


@dataclass(frozen=True)
class ScalePlan:
    """How many images of which size a scale writes per category.

    Attributes
    ----------
    name : str
        The scale's name.
    train, test_good : int
        Good images in ``train/good`` and ``test/good``.
    per_type : int
        Defective test images filed under each defect type.
    min_defect : int
        At least this many defective test images per category (extra ones cycle the types).
    size_fraction : float
        Heights and widths are drawn from the lowest ``size_fraction`` of each published range.
    max_regions : int
        Cap on the regions of one defective image.
    multi_every : int
        About one defective image in ``multi_every`` carries two defect types (where allowed).
    reshoots : int
        Test images that are distinct shots of a train image's part (same part, same size; a
        sub-pixel shift, other lighting, fresh noise, their own defects), alternately good and
        defective: the near-identical images the real release is full of.
    """

    name: str
    train: int
    test_good: int
    per_type: int
    min_defect: int
    size_fraction: float
    max_regions: int
    multi_every: int = 4
    reshoots: int = 0


SCALE_PLANS: dict[str, ScalePlan] = {
    "tiny": ScalePlan("tiny", train=3, test_good=2, per_type=1, min_defect=3,
                      size_fraction=0.25, max_regions=4, reshoots=2),
    # The demo's sample: enough good and defective test images per category (10 and at
    # least 10) for image-level AUROC to mean something, small images to stay fast.
    "demo": ScalePlan("demo", train=8, test_good=10, per_type=1, min_defect=10,
                      size_fraction=0.1, max_regions=4, reshoots=4),
    "small": ScalePlan("small", train=12, test_good=8, per_type=3, min_defect=16,
                       size_fraction=1.0, max_regions=8, reshoots=6),
}
