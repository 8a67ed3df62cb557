"""Saved views a reviewer wants first, and how the app shows the dataset.

Per submission with field prefix ``<p>`` (dashes in the names):

``<p>-worst-false-positives``
    Good images, highest image score first (the false alarms at any threshold).
``<p>-missed-regions``
    Defective images with regions that barely score (``coverage`` below
    :data:`threecad.fiftyone.predictions.MISSED_COVERAGE`), most missed regions first, showing
    only those regions (as boxes labelled by defect type) over the heatmap: the mask, its
    outline and the other region fields are left out of the view.
``<p>-best-detections``
    Defective images, highest per-image PRO first.

The app opens, coloured by field, with the first submission's heatmap (green, drawn by
FiftyOne with an opacity that grows with the value: normal pixels stay clear, high scores
glow; the scale is in ``<p>_scale`` and the field's description), the ground-truth mask as a
red outline (a filled mask would hide the heatmap under it), that submission's region boxes
(yellow, labelled by defect type, with their coverage) and the image's defect types: green
outside red is a false alarm, a red outline without green a miss. Without a submission it
opens with the filled mask (red), the region boxes (yellow) and the defect types. The
dataset's description holds this legend.
When a user switches the app to "color by value", heatmaps use the ``inferno`` scale.
"""

from __future__ import annotations

from typing import Sequence

from .build import DEFECT_VALUE
from .predictions import MISSED_COVERAGE

__all__ = ["VIEW_KINDS", "view_name", "save_views", "configure_app", "legend"]

VIEW_KINDS = ("worst-false-positives", "missed-regions", "best-detections")
MASK_COLOR = "#ff2d2d"
REGION_COLOR = "#ffd400"
TYPE_COLOR = "#4fc3f7"
HEATMAP_COLORS = ("#00e676", "#2979ff", "#e040fb", "#ff9100")  # one per submission, in turn
HEATMAP_SCALE = "inferno"


def view_name(prefix: str, kind: str) -> str:
    """The saved view's name, e.g. ``synthetic-demo-worst-false-positives``."""
    return f"{prefix.replace('_', '-')}-{kind}"


def _other_region_fields(dataset, prefix: str) -> list[str]:
    """Fields that would draw regions other than the missed ones of ``prefix``."""
    schema = dataset.get_field_schema()
    others = [f for f in schema if f.endswith("_regions") and f != f"{prefix}_regions"]
    return [f for f in ("ground_truth", "ground_truth_outline", "regions") if f in schema] + others


def legend(prefixes: Sequence[str]) -> str:
    """The dataset description: what the colours mean."""
    if not prefixes:
        return ("Red: ground-truth mask. Yellow boxes: regions, labelled by defect type (size class as tag). "
                "Tags: good/defect, category code.")
    return (f"Green: the {prefixes[0]} heatmap, clear at its category's median normal score and full at the "
            f"99.9th percentile of its scores (per category; see {prefixes[0]}_scale). Red outline: ground truth. "
            f"Yellow boxes: {prefixes[0]}_regions, labelled by defect type, with coverage (share of pixels above "
            f"the 1 % FPR threshold; missed when < {MISSED_COVERAGE}). Green outside red: false alarm; red "
            f"without green: miss.")


def save_views(fo, dataset, prefix: str) -> list[str]:
    """Save the three review views of one submission (replacing older ones); return their names."""
    from fiftyone import ViewField as F

    views = {
        "worst-false-positives": dataset.match(F("label") == "good").sort_by(f"{prefix}_score", reverse=True),
        "missed-regions": dataset.filter_labels(f"{prefix}_regions", F("coverage") < MISSED_COVERAGE)
        .exclude_fields(_other_region_fields(dataset, prefix))
        .sort_by(f"{prefix}_missed", reverse=True),
        "best-detections": dataset.match((F("label") == "defect") & (F(f"{prefix}_pro") != None))  # noqa: E711
        .sort_by(f"{prefix}_pro", reverse=True),
    }
    names = []
    for kind, view in views.items():
        name = view_name(prefix, kind)
        dataset.save_view(name, view, description=f"{kind.replace('-', ' ')} of {prefix}", overwrite=True)
        names.append(name)
    return names


def configure_app(fo, dataset, prefixes: Sequence[str]) -> None:
    """Active fields (the first heatmap and the mask outline, or the mask and the regions),
    mask targets and the colour scheme (see the module doc)."""
    dataset.default_mask_targets = {DEFECT_VALUE: "defect"}
    dataset.description = legend(prefixes)
    # a filled mask hides the heatmap under it: with a submission, the mask is shown as its outline
    active = ([f"{prefixes[0]}_heatmap", "ground_truth_outline", f"{prefixes[0]}_regions", "defect_types"]
              if prefixes else ["ground_truth", "regions", "defect_types"])
    cfg = dataset.app_config
    cfg.active_fields = fo.ActiveFields(paths=active)
    fields = [{"path": path, "fieldColor": MASK_COLOR,
               "maskTargetsColors": [{"intTarget": DEFECT_VALUE, "color": MASK_COLOR}]}
              for path in ("ground_truth", "ground_truth_outline")]
    fields += [{"path": path, "fieldColor": REGION_COLOR}
               for path in ("regions", *(f"{p}_regions" for p in prefixes))]
    fields.append({"path": "defect_types", "fieldColor": TYPE_COLOR})
    fields += [{"path": f"{p}_heatmap", "fieldColor": HEATMAP_COLORS[k % len(HEATMAP_COLORS)]}
               for k, p in enumerate(prefixes)]
    cfg.color_scheme = fo.ColorScheme(
        color_by="field", opacity=0.7, fields=fields,
        default_mask_targets_colors=[{"intTarget": DEFECT_VALUE, "color": MASK_COLOR}],
        colorscales=[{"path": f"{p}_heatmap", "name": HEATMAP_SCALE} for p in prefixes],
        default_colorscale={"name": HEATMAP_SCALE, "list": None},
    )
    dataset.save()
