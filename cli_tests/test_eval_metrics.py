"""The hierarchical metrics of `icdreason eval`, checked against scikit-learn and against numbers worked out by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from icdreason.codes import CHAPTER_RANGES
from icdreason.evaluation import evaluate_codes
from icdreason.evaluation.bootstrap import bootstrap_intervals
from icdreason.evaluation.breakdowns import frequency_thirds
from icdreason.evaluation.metrics import NIL, LabelSpace, encode, score_level

# --- an independent, row-by-row reference of the label mapping ---------------------------------------------------
# The documented shape: a letter, a digit (or the "A" of QA0 followed by a digit), a letter or digit, up to 4 more.
_WELL_FORMED = re.compile(r"^[A-Z](?:[0-9][A-Z0-9]|A[0-9])[A-Z0-9]{0,4}$")


def _chapter(cat: str) -> str:
    for ch in CHAPTER_RANGES:
        if ch.first <= cat <= ch.last:
            return str(ch.number)
    return NIL


def reference_labels(gold, pred, level, space=None):
    """Map codes to the classes of one level the slow, obvious way (the docs' definition, line by line)."""
    clean = lambda c: c.strip().upper().replace(".", "")  # noqa: E731
    space = {clean(c) for c in (space if space is not None else gold)}
    cats = {c[:3] for c in space}

    def label(code, is_gold):
        if code is None or not clean(code):
            return NIL
        c = clean(code)
        if not is_gold and not _WELL_FORMED.match(c):
            return NIL
        if level == "code":
            return c if c in space else NIL
        if level == "category":
            return c[:3] if c[:3] in cats else NIL
        return _chapter(c[:3])

    return [label(g, True) for g in gold], [label(p, False) for p in pred]


def sklearn_numbers(y_true, y_pred):
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    gp, gr, gf, _ = precision_recall_fscore_support(y_true, y_pred, labels=sorted(set(y_true)), average="macro",
                                                    zero_division=0)
    not_nil = sorted((set(y_true) | set(y_pred)) - {NIL})
    if not_nil:
        mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=not_nil, average="micro",
                                                        zero_division=0)
    else:
        mp = mr = mf = 0.0
    return {"macro": (p, r, f), "gold": (gp, gr, gf), "micro": (mp, mr, mf), "accuracy": accuracy_score(y_true, y_pred)}


def assert_matches_sklearn(gold, pred, labels=None):
    ours = evaluate_codes(gold, pred, labels=labels)
    for level in ("chapter", "category", "code"):
        y_true, y_pred = reference_labels(gold, pred, level, labels)
        expected = sklearn_numbers(y_true, y_pred)
        s = ours[level]
        assert (s.macro.precision, s.macro.recall, s.macro.f1) == pytest.approx(expected["macro"], abs=1e-12), level
        assert (s.macro_gold.precision, s.macro_gold.recall, s.macro_gold.f1) == pytest.approx(expected["gold"],
                                                                                                abs=1e-12), level
        assert (s.micro.precision, s.micro.recall, s.micro.f1) == pytest.approx(expected["micro"], abs=1e-12), level
        assert s.accuracy == pytest.approx(expected["accuracy"], abs=1e-12), level
        assert s.classes == len(set(y_true) | set(y_pred)), level


# Codes that share categories and chapters, sit on chapter boundaries, or fall outside every chapter (U99).
GOLD_POOL = ["I21.4", "I21.9", "I10", "E11.9", "E11.65", "J18.9", "D49.2", "D50.0", "H59.011", "H60.01", "U07.1",
             "O9A.11", "Z3A.01", "S72.001A", "U99.0"]
VARIANTS = st.sampled_from(GOLD_POOL).flatmap(
    lambda c: st.sampled_from([c, c.lower(), c.replace(".", ""), f"  {c} ", c.lower().replace(".", "") + "\t"]))
PRED = st.one_of(
    VARIANTS,
    st.sampled_from(["I21.3", "I25.10", "A41.9", "Q21.1", "H59.9", "D49", "J18", "QA0.0"]),  # outside the space
    st.sampled_from(["garbage", "I2", "", "  ", "12.3", "IXX.1"]),  # malformed
    st.none(),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(VARIANTS, PRED), min_size=1, max_size=60))
def test_equals_sklearn_on_random_inputs(pairs):
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    assert_matches_sklearn(gold, pred)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(VARIANTS, PRED), min_size=1, max_size=40),
       st.lists(st.sampled_from(GOLD_POOL + ["I21.3", "A41.9"]), min_size=1, max_size=10))
def test_equals_sklearn_with_a_fixed_vocabulary(pairs, labels):
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    assert_matches_sklearn(gold, pred, labels=labels)


def test_equals_sklearn_on_a_large_random_input():
    rng = np.random.default_rng(7)
    letters = "ABCDEFGHIJKLMNOPRSTZ"
    pool = sorted({f"{letters[rng.integers(20)]}{rng.integers(100):02d}.{rng.integers(1000)}" for _ in range(800)})
    gold = [pool[i] for i in rng.integers(0, len(pool), 20_000)]
    noise = pool + [f"Q{i:02d}.0" for i in range(50)] + ["nonsense", None]
    pred = [g if rng.random() < 0.4 else noise[rng.integers(len(noise))] for g in gold]
    assert_matches_sklearn(gold, pred)


def test_hand_computed_example():
    """Six notes, worked out on paper.

    gold    pred      chapter      category     code
    I21.4   I21.4     9 / 9        I21 / I21    I214 / I214
    I21.4   I21.9     9 / 9        I21 / I21    I214 / NIL   (I21.9 is not a gold code)
    J18.9   J18.9     10 / 10      J18 / J18    J189 / J189
    J18.9   (none)    10 / NIL     J18 / NIL    J189 / NIL
    N39.0   K35.80    14 / 11      N39 / NIL    N390 / NIL   (K35 is not a gold category)
    E11.9   e119      4 / 4        E11 / E11    E119 / E119

    Full code: classes I214 (support 2, predicted 1, tp 1), J189 (2, 1, 1), N390 (1, 0, 0), E119 (1, 1, 1),
    NIL (0, 3, 0). Per class P = 1, 1, 0, 1, 0; R = 1/2, 1/2, 0, 1, 0; F1 = 2/3, 2/3, 0, 1, 0.
    Macro over the 5 present classes: P = 3/5, R = 2/5, F1 = (7/3)/5 = 7/15. Over the 4 gold classes: P = 3/4,
    R = 2/4, F1 = 7/12. Accuracy 3/6. Micro without NIL: tp 3, predicted 3, support 6: P = 1, R = 1/2, F1 = 2/3.
    Category: I21 (2, 2, 2), J18 (2, 1, 1), N39 (1, 0, 0), E11 (1, 1, 1), NIL (0, 2, 0):
    P = (1 + 1 + 0 + 1 + 0)/5 = 3/5, R = (1 + 1/2 + 0 + 1 + 0)/5 = 1/2, F1 = (1 + 2/3 + 0 + 1 + 0)/5 = 8/15.
    Chapter: 9 (2, 2, 2), 10 (2, 1, 1), 14 (1, 0, 0), 11 (0, 1, 0), 4 (1, 1, 1), NIL (0, 1, 0):
    P = 3/6, R = 2.5/6, F1 = (8/3)/6 = 4/9.
    """
    gold = ["I21.4", "I21.4", "J18.9", "J18.9", "N39.0", "E11.9"]
    pred = ["I21.4", "I21.9", "J18.9", None, "K35.80", "e119"]
    s = evaluate_codes(gold, pred)
    code, cat, chap = s["code"], s["category"], s["chapter"]
    assert (code.macro.precision, code.macro.recall, code.macro.f1) == pytest.approx((3 / 5, 2 / 5, 7 / 15))
    assert (code.macro_gold.precision, code.macro_gold.recall, code.macro_gold.f1) == pytest.approx(
        (3 / 4, 2 / 4, 7 / 12))
    assert code.accuracy == pytest.approx(0.5)
    assert (code.micro.precision, code.micro.recall, code.micro.f1) == pytest.approx((1.0, 0.5, 2 / 3))
    assert (code.classes, code.gold_classes, code.nil_predictions) == (5, 4, 3)
    assert (cat.macro.precision, cat.macro.recall, cat.macro.f1) == pytest.approx((3 / 5, 1 / 2, 8 / 15))
    assert cat.nil_predictions == 2
    assert (chap.macro.precision, chap.macro.recall, chap.macro.f1) == pytest.approx((3 / 6, 2.5 / 6, 4 / 9))
    assert (chap.classes, chap.nil_predictions) == (6, 1)


def test_nil_handling():
    """Missing, malformed and out-of-space predictions are NIL; NIL is one class that costs precision once."""
    gold = ["I21.4", "I21.4", "I21.4", "I21.4"]
    pred = [None, "not a code", "Z99.89", "I21.4"]
    enc = encode(gold, pred)
    for level in ("category", "code"):
        labels = enc[level].classes[enc[level].y_pred].tolist()
        assert labels == [NIL, NIL, NIL, "I21" if level == "category" else "I214"]
    # At chapter level a real chapter stays a class of its own (Z99 -> 21) even though no gold row has it.
    assert enc["chapter"].classes[enc["chapter"].y_pred].tolist() == [NIL, NIL, "21", "9"]
    s = score_level(enc["code"])
    # Classes I214 (P 1, R 1/4) and NIL (P 0, R 0): macro P 1/2, R 1/8, F1 (2/5)/2.
    assert (s.macro.precision, s.macro.recall, s.macro.f1) == pytest.approx((0.5, 0.125, 0.2))
    # Every prediction right: NIL never appears and macro is 1.
    assert evaluate_codes(gold, gold)["code"].macro.f1 == 1.0


@pytest.mark.parametrize(("gold", "pred", "gold_chapter", "pred_chapter"), [
    ("D49.2", "D50.0", "2", "3"),
    ("H59.011", "H60.01", "7", "8"),
    ("U07.1", "u071", "22", "22"),
    ("O9A.11", "O99.89", "15", "15"),
    ("QA0.0", "Q99.9", "17", "17"),
])
def test_chapter_boundaries(gold, pred, gold_chapter, pred_chapter):
    enc = encode([gold], [pred])["chapter"]
    assert enc.classes[enc.y_true[0]] == gold_chapter
    assert enc.classes[enc.y_pred[0]] == pred_chapter


def test_code_outside_every_chapter_is_nil_at_chapter_level():
    enc = encode(["U99.0"], ["U86"])["chapter"]
    assert enc.classes[enc.y_true[0]] == NIL and enc.classes[enc.y_pred[0]] == NIL


def test_fixed_vocabulary_changes_what_is_nil():
    gold = ["I21.4", "J18.9"]
    pred = ["I21.9", "J18.9"]
    # With the gold as label space, I21.9 is NIL at code level; with a vocabulary holding it, it is its own class.
    assert encode(gold, pred)["code"].classes.tolist() == ["I214", "J189", NIL]
    enc = encode(gold, pred, LabelSpace.from_codes(["I21.4", "I21.9", "J18.9"], "vocab"))["code"]
    assert enc.classes[enc.y_pred].tolist() == ["I219", "J189"]
    # A gold code outside the vocabulary becomes NIL.
    enc = encode(gold, pred, LabelSpace.from_codes(["J18.9"], "vocab"))["code"]
    assert enc.classes[enc.y_true].tolist() == [NIL, "J189"]


def test_frequency_thirds_cut_by_cumulative_rows():
    gold = ["A00.0"] * 6 + ["B00.0"] * 3 + ["C00.0"] * 2 + ["D00.0"] * 1
    pred = ["A00.0"] * 6 + ["B00.0"] * 3 + ["X00"] * 2 + ["D00.0"] * 1
    thirds = frequency_thirds(evaluate_codes(gold, pred)["code"])
    assert [(t["third"], t["classes"], t["rows"]) for t in thirds] == [("head", 1, 6), ("middle", 1, 3),
                                                                       ("tail", 2, 3)]
    assert thirds[0]["macro"]["f1"] == 1.0
    assert thirds[2]["accuracy"] == pytest.approx(1 / 3)
    assert thirds[2]["macro"]["recall"] == pytest.approx(0.5)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    pool = [f"{'AEIJK'[i % 5]}{i:02d}.0" for i in range(30)]
    gold = [pool[i] for i in rng.integers(0, 30, 600)]
    pred = [g if rng.random() < 0.6 else pool[rng.integers(30)] for g in gold]
    enc = encode(gold, pred)
    a = bootstrap_intervals(enc, 200, seed=3)
    b = bootstrap_intervals(enc, 200, seed=3)
    c = bootstrap_intervals(enc, 200, seed=4)
    assert a == b and a != c
    for level in ("chapter", "category", "code"):
        point = score_level(enc[level])
        lo, hi = a[level]["accuracy"]
        assert lo < point.accuracy < hi
        lo, hi = a[level]["macro_f1"]
        assert lo < point.macro.f1 < hi and hi - lo < 0.2
