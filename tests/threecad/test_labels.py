import json

import pytest

from threecad.labels import LabelKind, LabelMap, LabelMapError


def test_pinyin_maps_to_english_and_english_stays_as_spelled():
    labels = LabelMap()
    assert labels.resolve("aotu").english == "bump"
    assert labels.resolve("aotu").kind is LabelKind.PINYIN
    assert labels.resolve("HuaHen").english == "scratch"
    assert labels.resolve("neiqiaopian").english == "inner_warped_sheet"
    r = labels.resolve("Scratch")
    assert (r.english, r.kind) == ("Scratch", LabelKind.ENGLISH)


def test_unknown_name_passes_through_unchanged():
    r = LabelMap().resolve("zzz_weird")
    assert (r.english, r.kind) == ("zzz_weird", LabelKind.UNKNOWN)


def test_to_pinyin_round_trips_for_every_english_name():
    labels = LabelMap()
    for english in labels.known_english():
        assert labels.to_english(labels.to_pinyin(english)) == english
    with pytest.raises(KeyError):
        labels.to_pinyin("no_such_type")


def test_user_csv_extends_and_overrides(tmp_path):
    f = tmp_path / "map.csv"
    f.write_text("pinyin,english\nxinci,new_term\naotu,dent\nkeep_me,keep_me\n")
    labels = LabelMap.from_file(f)
    assert labels.to_english("xinci") == "new_term"
    assert labels.to_english("aotu") == "dent"
    assert labels.resolve("keep_me").kind is LabelKind.ENGLISH
    assert labels.resolve("new_term").kind is LabelKind.ENGLISH


def test_user_json(tmp_path):
    f = tmp_path / "map.json"
    f.write_text(json.dumps({"xinci": "new_term"}))
    assert LabelMap.from_file(f).to_english("xinci") == "new_term"


@pytest.mark.parametrize("name,text,needle", [
    ("bad.csv", "a,b\nx,y\n", "header"),
    ("bad2.csv", "pinyin,english\nx\n,y\n", "line 2"),
    ("bad.json", "[1, 2]", "JSON object"),
    ("bad2.json", "{not json", "not valid JSON"),
])
def test_bad_user_files_name_the_file_and_problem(tmp_path, name, text, needle):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(LabelMapError) as err:
        LabelMap.from_file(f)
    assert str(f) in str(err.value) and needle in str(err.value)


def test_missing_user_file(tmp_path):
    with pytest.raises(LabelMapError, match="cannot read"):
        LabelMap.from_file(tmp_path / "nope.csv")
