"""What a coder checks after the index: completing a code in the tabular, Excludes1, code first / use additional,
and whether a code's site and side agree with the note."""

from __future__ import annotations

import pytest

from icdreason.engines.coding_rules import NoteSites, agreement, principal_first
from icdreason.kb.alpha.words import with_joined, words


@pytest.fixture(scope="module")
def base(built_kb):
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(built_kb) as kb:
        yield kb


@pytest.mark.parametrize("printed, context, path, billable", [
    ("L03.11-", "left leg", "cellulitis lower limb", "L03116"),
    ("L03.11-", "", "cellulitis lower limb", "L03119"),          # no side said: the unspecified child
    ("S72.00-", "right hip", "fracture femur neck", "S72001A"),   # initial encounter for a closed fracture
    ("S72.00-", "open fracture right hip", "fracture femur neck", "S72001B"),
    ("T40.1X1", "heroin", "", "T401X1A"),                         # a Drug table cell needs its 7th character
    ("E10.-", "type 1 diabetes", "", "E109"),                     # "with unspecified complications" is not said
    ("I21.9", "", "", "I219"),
])
def test_completion_in_the_tabular(base, printed, context, path, billable):
    assert base.index_completer.complete(printed, words(context), words(path)) == billable


def test_excludes1_redirects_only_for_the_same_condition(base):
    code, path = base.verify_in_tabular("M5416", with_joined(words("lumbar disc radiculopathy")), "Radiculopathy",
                                        (frozenset({"radiculopathy"}),))
    assert code == "M5116" and "Excludes1" in path
    asthma = (frozenset({"asthma"}),)
    assert base.verify_in_tabular("J45901", with_joined(words("asthma exacerbation with wheezing")), "", asthma)[0] \
        == "J45901"  # "wheezing NOS (R06.2)" is about wheezing, not about this asthma


def test_sequencing_notes(base):
    instructions = base.instructions
    assert instructions.sequenced_after("E11.621", "L97.512")      # E11.621: use additional code (L97.4-, L97.5-)
    assert instructions.sequenced_after("I11.0", "I50.33")         # I50: code first (I11.0)
    assert not instructions.sequenced_after("L97.512", "E11.621")
    ranked = [("L97.512", 10.0), ("E11.621", 8.0), ("I10", 1.0)]
    reordered, why = principal_first(ranked, base, set(words("diabetic foot ulcer")), base.description)
    assert [c for c, _ in reordered][:2] == ["E11.621", "L97.512"] and why


def test_site_and_side_agreement():
    leg = NoteSites.read(["cellulitis of the left leg"])
    assert leg.sides == {"left"} and leg.regions == {"lower_limb"}
    assert agreement("Cellulitis of left lower limb", leg) == 1.0
    assert agreement("Cellulitis of right lower limb", leg) < 1.0     # the other side
    assert agreement("Cellulitis of left orbit", leg) < 1.0           # another body region
    assert agreement("Pneumonia, unspecified organism", leg) == 1.0   # names no site
