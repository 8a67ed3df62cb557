import pytest

from threecad.categories import (CATEGORIES, PUBLISHED_TOTAL, UnknownCategoryError, category_codes,
                                 find_category, get_category)


def test_published_table_adds_up():
    assert len(CATEGORIES) == 8
    for key, total in PUBLISHED_TOTAL.items():
        assert sum(getattr(c, key) for c in CATEGORIES) == total, key
    for c in CATEGORIES:
        assert c.test == c.test_good + c.test_defect, c.code


@pytest.mark.parametrize("name,code", [
    ("ACC", "ACC"), ("acc", "ACC"), ("Aluminum_Camera_Cover", "ACC"),
    ("aluminum_camera_cover", "ACC"), ("Aluminum-Camera-Cover", "ACC"),
    ("Aluminum_Middle-Frame", "AMF"), ("aluminum_ipad_new", "ANI"), ("Aluminum_New_Ipad", "ANI"),
    ("aluminumnewmiddleframe", "ANMF"), ("aluminum_middle_frame_new", "ANMF"),
    ("Copper_Stator", "CS"), ("iron stator", "IS"), ("AP", "AP"), ("Aluminum_Pc", "AP"),
])
def test_lookup_accepts_codes_folders_and_aliases(name, code):
    assert get_category(name).code == code


def test_unknown_category_lists_the_known_ones():
    assert find_category("Bottle") is None
    with pytest.raises(UnknownCategoryError) as err:
        get_category("Bottle")
    assert "Bottle" in str(err.value) and "Aluminum_Camera_Cover" in str(err.value)


def test_codes_in_paper_order():
    assert category_codes() == ["ACC", "AI", "AMF", "ANMF", "ANI", "AP", "CS", "IS"]
