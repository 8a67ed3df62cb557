import json

import pandas as pd
import pytest

from threecad.categories import CATEGORIES
from threecad.stats import compare_published, render, summarise


def frame(rows):
    base = {"defect_types": (), "n_types": 0, "n_regions": -1}
    return pd.DataFrame([{**base, **r} for r in rows])


ROWS = [
    dict(category="Aluminum_Ipad", split="train", label="good", height=800, width=600),
    dict(category="Aluminum_Ipad", split="test", label="good", height=900, width=700),
    dict(category="Aluminum_Ipad", split="test", label="defect", height=1000, width=650,
         defect_types=("scratch", "dent"), n_types=2, n_regions=3),
    dict(category="Aluminum_Ipad", split="test", label="defect", height=760, width=1024,
         defect_types=("scratch",), n_types=1, n_regions=1),
    dict(category="Copper_Stator", split="train", label="good", height=1024, width=1024),
    dict(category="Copper_Stator", split="test", label="defect", height=1024, width=1024,
         defect_types=("broken_wire",), n_types=1, n_regions=5),
]


def test_summary_matches_hand_counts():
    s = summarise(frame(ROWS))
    ai = s["categories"]["Aluminum_Ipad"]
    assert ai == {"code": "AI", "train": 1, "test": 3, "test_good": 1, "test_defect": 2,
                  "defect_types": 2, "height": [760, 1000], "width": [600, 1024],
                  "regions_per_defect_image": [1, 3], "types_per_defect_image": [1, 2]}
    cs = s["categories"]["Copper_Stator"]
    assert cs["test_good"] == 0 and cs["regions_per_defect_image"] == [5, 5]
    t = s["total"]
    assert (t["train"], t["test"], t["test_defect"], t["defect_types"]) == (2, 4, 3, 3)
    assert t["regions_per_defect_image"] == [1, 5] and t["height"] == [760, 1024]
    assert list(s["categories"]) == ["Aluminum_Ipad", "Copper_Stator"]


def test_category_without_defects_has_null_ranges():
    s = summarise(frame(ROWS[:2]))
    assert s["categories"]["Aluminum_Ipad"]["regions_per_defect_image"] is None
    assert "-" in render(s, "table")


def test_render_formats():
    s = summarise(frame(ROWS))
    assert json.loads(render(s, "json")) == json.loads(json.dumps(s))
    csv_text = render(s, "csv").splitlines()
    assert csv_text[0].startswith("code,folder,train,test,test_good,test_defect,defect_types,height_min")
    assert csv_text[1].startswith("AI,Aluminum_Ipad,1,3,1,2,2,760,1000,600,1024,1,3,1,2")
    assert csv_text[-1].startswith("all,,2,4,")
    md = render(s, "markdown").splitlines()
    assert md[0].startswith("| code | folder |") and md[-1].startswith("| all |")
    table = render(s, "table")
    assert "760-1000" in table and "Copper_Stator" in table
    with pytest.raises(ValueError):
        render(s, "xml")


def published_summary():
    cats = {c.folder: {"code": c.code, **{k: v for k, v in c.published_row().items() if k != "code"}}
            for c in CATEGORIES}
    total = {"train": 10493, "test": 16546, "test_good": 5084, "test_defect": 11462, "defect_types": 47}
    return {"categories": cats, "total": total}


def test_compare_published_exact_match_and_differences():
    s = published_summary()
    assert compare_published(s) == []
    s["categories"]["Aluminum_Ipad"]["train"] = 2095
    s["categories"]["Iron_Stator"]["height"] = [1000, 1024]
    s["total"]["train"] = 10492
    diffs = {(d.category, d.field): d for d in compare_published(s)}
    assert set(diffs) == {("AI", "train"), ("IS", "height"), ("all", "train")}
    assert str(diffs[("AI", "train")]) == "AI train: tree 2095, published 2096"


def test_compare_published_reports_missing_categories():
    s = published_summary()
    del s["categories"]["Copper_Stator"]
    diffs = compare_published(s)
    assert [(d.category, d.field) for d in diffs] == [("CS", "missing")]
    assert compare_published(s, only_present=True) == []
