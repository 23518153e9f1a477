"""Pure ICD-10-CM string logic: normalisation, patterns, chapters, prefixes, 7th characters."""

import pytest

from icdreason.codes import (
    CHAPTER_RANGES,
    category,
    chapter_of,
    common_prefix_length,
    dotted,
    is_well_formed,
    matches_paper_pattern,
    normalize,
    normalize_with_notes,
    seventh_character_code,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("M51.16", "M5116"),
        ("m51.16", "M5116"),
        ("  I21.4 ", "I214"),
        ('"i21.4",', "I214"),
        ("(E11.65);", "E1165"),
        ("S72.001A", "S72001A"),
        ("І21.4", "I214"),  # Cyrillic capital I
        ("М51.16", "M5116"),  # Cyrillic capital M
        ("Ｉ２１．４", "I214"),  # full-width forms (NFKC)
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_says_what_it_changed():
    code, notes = normalize_with_notes(" і21.4,")
    assert code == "I214"
    assert "look-alike characters from another script replaced" in notes
    assert "surrounding punctuation removed" in notes


def test_dotted_and_category():
    assert dotted("S72001A") == "S72.001A"
    assert dotted("i10") == "I10"
    assert category("M51.16") == "M51"


def test_paper_pattern_versus_icd10cm_structure():
    # The paper's pattern wants two digits after the letter; real codes such as Z3A.01 have a letter third.
    assert matches_paper_pattern("M51.16") and is_well_formed("M51.16")
    assert not matches_paper_pattern("Z3A.01") and is_well_formed("Z3A.01")
    assert not matches_paper_pattern("M1A.0110") and is_well_formed("M1A.0110")
    assert is_well_formed("QA0.0")  # FY2026's new category has a letter second
    for bad in ("", "12", "I2", "1I1.4", "M51.16789", "I21-4"):
        assert not is_well_formed(bad), bad


@pytest.mark.parametrize(
    "code, chapter",
    [
        ("A00.0", 1), ("B99.9", 1), ("C00.0", 2), ("D49.9", 2), ("D50.0", 3), ("D89.9", 3), ("E11.65", 4),
        ("F32.A", 5), ("H59.89", 7), ("H60.00", 8), ("H95.89", 8), ("I21.4", 9), ("O9A.111", 15), ("QA0.0", 17),
        ("S72.001A", 19), ("T88.9XXA", 19), ("U07.1", 22), ("U85", 22), ("V00.01XA", 20), ("Z3A.01", 21),
    ],
)
def test_chapter_ranges(code, chapter):
    assert chapter_of(code).number == chapter


def test_chapter_of_outside_every_range():
    assert chapter_of("U99") is None
    assert chapter_of("") is None
    assert len(CHAPTER_RANGES) == 22


def test_common_prefix_length():
    assert common_prefix_length("M51.16", "M5116") == 5
    assert common_prefix_length("M51.16", "M51.17") == 4
    assert common_prefix_length("I21.4", "J18.9") == 0


def test_seventh_character_padding():
    assert seventh_character_code("T36.0X1", "A") == "T36.0X1A"
    assert seventh_character_code("S32.9", "A") == "S32.9XXA"
    assert seventh_character_code("S72.001", "A") == "S72.001A"
    assert seventh_character_code("M1A.011", "0") == "M1A.0110"
