"""Self-consistency: hierarchical agreement, the final code, confidence per level and the differential."""

from __future__ import annotations

import pytest

from icdreason.vote import agreement, vote


def test_agreement_follows_the_hierarchy():
    assert agreement("I21.4", "I21.4") == 1.0
    same_category = agreement("I21.4", "I21.9")  # chapter + I, 2, 1 (category bonus): 5 of 6
    same_chapter = agreement("I21.4", "I50.9")  # chapter + I: 2 of 6
    other_chapter = agreement("I21.4", "J18.9")
    assert same_category == pytest.approx(5 / 6)
    assert same_chapter == pytest.approx(2 / 6)
    assert other_chapter == 0.0
    # S and T codes share chapter XIX without sharing a first letter
    assert agreement("S72.002A", "T14.90XA") == pytest.approx(1 / 9)
    assert agreement("", "I10") == 0.0


def test_majority_code_wins_with_confidence_per_level():
    result = vote(["I21.4", "I21.4", "I21.9", "J18.9"], k=3)
    assert result.code == "I21.4"
    assert result.confidence == {"code": 0.5, "category": 0.75, "chapter": 0.75}
    assert result.top_k == [{"code": "I21.4", "support": 0.5}, {"code": "I21.9", "support": 0.25},
                            {"code": "J18.9", "support": 0.25}]


def test_a_cluster_of_related_codes_beats_a_larger_unrelated_group():
    # J18.9 is the most frequent single code, but the three I21 samples agree with each other on the category.
    result = vote(["J18.9", "I21.4", "J18.9", "I21.9", "I21.3"])
    assert result.code == "I21.4"  # first drawn of the tied I21 codes
    assert result.confidence["code"] == 0.2
    assert result.confidence["category"] == 0.6
    assert result.top_k[0] == {"code": "I21.4", "support": 0.2}
    assert result.top_k[1] == {"code": "J18.9", "support": 0.4}


def test_samples_without_a_code_count_against_confidence():
    result = vote(["E11.9", None, None, "E11.9"])
    assert result.code == "E11.9"
    assert result.confidence["code"] == 0.5
    assert (result.samples, result.with_code) == (4, 2)
    assert vote([None, None]).code is None


def test_prefer_breaks_ties_and_more_specific_codes_win_otherwise():
    assert vote(["I21", "I21.4"]).code == "I21.4"
    assert vote(["I21.4", "I21.9"], prefer=lambda c: c == "I21.9").code == "I21.9"


def test_weighted_candidates():
    # R07.9 has the largest single weight (4), but I21.4 gathers 3 + 2 x 5/6 = 4.67 from its category.
    result = vote(["R07.9", "I21.4", "I21.9"], weights=[4.0, 3.0, 2.0])
    assert result.code == "I21.4"
    assert result.confidence == {"code": 0.3333, "category": 0.5556, "chapter": 0.5556}
    assert result.top_k[1] == {"code": "R07.9", "support": 0.4444}


def test_weights_must_match_codes():
    with pytest.raises(ValueError):
        vote(["I10"], weights=[1.0, 2.0])
