"""Agreement statistics, sampling and evidence highlighting of `icdreason audit` (pure functions, no database)."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import cohen_kappa_score

from icdreason.audit import agreement, cohen_kappa, divergence_level, find_evidence, fleiss_kappa, level_label, sample
from icdreason.audit.evidence import sentences, unsupported_trace_sentences
from icdreason.audit.sampling import share_of
from icdreason.errors import UsageError


def test_cohen_kappa_hand_computed():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


@pytest.mark.parametrize("a,b", [
    (["I21", "E11", "J18", "N39"], ["I21", "E11", "J15", "N30"]),
    ([9, 4, 10, 14, 9, 9], [9, 4, 10, 14, 4, 10]),
    (["accept", "correct", "accept", "reject", "accept"], ["accept", "accept", "correct", "reject", "correct"]),
])
def test_cohen_kappa_matches_sklearn(a, b):
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_cohen_kappa_undefined_when_everyone_uses_one_class():
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))


def test_fleiss_kappa_wikipedia_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = [[cat for cat, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(ratings) == pytest.approx(0.2099, abs=1e-4)


def test_fleiss_equals_scotts_pi_shape_for_two_raters_and_needs_equal_counts():
    with pytest.raises(ValueError):
        fleiss_kappa([["a", "b"], ["a"]])
    # perfect agreement among three raters
    assert fleiss_kappa([["a", "a", "a"], ["b", "b", "b"]]) == pytest.approx(1.0)


def test_agreement_at_levels_two_and_three_raters():
    codes = {"alice": {"n1": "I21.4", "n2": "E11.65", "n3": None},
             "bob": {"n1": "I21.4", "n2": "E11.9", "n3": "J18.9"}}
    by_level = {lvl: agreement({r: {c: level_label(v, lvl) for c, v in m.items()} for r, m in codes.items()}, lvl)
                for lvl in ("chapter", "category", "code")}
    assert by_level["code"].items == 2  # n3 has no code from alice
    assert by_level["code"].observed == 0.5
    assert by_level["category"].observed == 1.0
    assert by_level["code"].method == "cohen"
    three = agreement({"a": {"1": "x", "2": "y"}, "b": {"1": "x", "2": "y"}, "c": {"1": "x", "2": "x"}}, "decision")
    assert three.method == "fleiss" and three.items == 2


def test_level_labels_and_divergence():
    assert level_label("i21.4", "chapter") == 9
    assert level_label("I21.4", "category") == "I21"
    assert level_label("I21.4", "code") == "I214"
    assert divergence_level("I21.4", "J18.9") == "chapter"
    assert divergence_level("J18.9", "J15.9") == "category"
    assert divergence_level("E11.9", "E11.65") == "code"
    assert divergence_level(None, "E11.65") == "no model code"


def _records():
    return [
        {"id": "a", "chapter": 9, "confidence": {"code": 0.9}, "top_k": [{"code": "I21.4", "support": 0.9}]},
        {"id": "b", "chapter": 9, "confidence": {"code": 0.2},
         "top_k": [{"code": "I21.4", "support": 0.4}, {"code": "I20.0", "support": 0.3},
                   {"code": "R07.9", "support": 0.3}]},
        {"id": "c", "chapter": 4, "confidence": {"code": 0.5},
         "top_k": [{"code": "E11.9", "support": 0.5}, {"code": "E11.65", "support": 0.5}]},
        {"id": "d", "chapter": 10, "confidence": {"code": 1.0}, "top_k": [{"code": "J18.9", "support": 1.0}]},
        {"id": "e", "chapter": 9, "confidence": {"code": 0.7},
         "top_k": [{"code": "I10", "support": 0.7}, {"code": "I11.9", "support": 0.3}]},
    ]


def test_sampling_strategies_are_seeded_and_ranked():
    recs = _records()
    assert sample(recs, None) == [0, 1, 2, 3, 4]
    assert sample(recs, 3, "random", seed=7) == sample(recs, 3, "random", seed=7)
    assert sorted(sample(recs, 5, "random", seed=1)) == [0, 1, 2, 3, 4]
    assert sample(recs, 2, "low-confidence") == [1, 2]  # confidence 0.2, 0.5
    assert sample(recs, 2, "disagreement") == [1, 2]  # entropy 1.57 bits, then 1.0 bit
    per_chapter = sample(recs, 3, "per-chapter", seed=3)
    assert {recs[i]["chapter"] for i in per_chapter} == {4, 9, 10}  # one from each chapter first
    with pytest.raises(UsageError, match="confidence"):
        sample([{"id": "x"}], 1, "low-confidence")
    # retriever records have no vote (confidence null): their candidate share ranks them, and is named as such
    retriever = [{"id": r["id"], "confidence": None, "candidate_share": r["confidence"]} for r in recs]
    assert sample(retriever, 2, "low-confidence") == [1, 2]
    assert share_of(retriever[0]) == ({"code": 0.9}, "candidate share")
    assert share_of(recs[0]) == ({"code": 0.9}, "vote share")
    with pytest.raises(UsageError, match="strategy"):
        sample(recs, 1, "alphabetical")


def test_evidence_finds_quoted_and_paraphrased_sentences():
    note = ("67 year old man. He reports crushing chest pain radiating to the left arm since this morning.\n"
            "Troponin elevated at 2.3 ng/mL. Likes gardening.")
    trace = ("Crushing chest pain radiating to the left arm. Troponins are elevated. "
             "This suggests a myocardial infarction.")
    found = [note[e.start:e.end] for e in find_evidence(note, trace)]
    assert found == ["He reports crushing chest pain radiating to the left arm since this morning.",
                     "Troponin elevated at 2.3 ng/mL."]
    assert [s.text for s in unsupported_trace_sentences(note, trace)] == ["This suggests a myocardial infarction."]
    assert [s.text for s in sentences("Temp 38.5 today. BP 120/80!\nNo rash")] == [
        "Temp 38.5 today.", "BP 120/80!", "No rash"]
