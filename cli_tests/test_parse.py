"""parse_response: the paper's two-regex format check, and the tolerant extraction that says what it did."""

from __future__ import annotations

import pytest

from icdreason.parse import format_ok, parse_response


def test_well_formed_response_after_think_prefill():
    p = parse_response("Substernal pressure, troponin rising.</think><diagnosis>I21.4</diagnosis>")
    assert p.format_ok is True
    assert (p.code_raw, p.code, p.why) == ("I21.4", "I21.4", None)
    assert p.trace == "Substernal pressure, troponin rising."
    assert p.think_blocks == ["Substernal pressure, troponin rising."] and p.diagnosis_blocks == ["I21.4"]


def test_response_that_repeats_the_opening_think_tag_is_not_double_counted():
    p = parse_response("<think>\nreasoning\n</think>\n<diagnosis>M5116</diagnosis>\n")
    assert p.format_ok and p.code == "M51.16" and p.trace == "reasoning"


def test_without_prefill_the_opening_tag_is_required():
    assert format_ok("x</think><diagnosis>I10</diagnosis>", prefilled_think=False) is False
    assert format_ok("<think>x</think><diagnosis>I10</diagnosis>", prefilled_think=False) is True


@pytest.mark.parametrize(
    "text, code, why_part",
    [
        ("x</think><diagnosis>i21.4</diagnosis>", "I21.4", "not upper case"),
        ("x</think><diagnosis>Z3A.01</diagnosis>", "Z3A.01", "does not match the paper's code pattern"),
        ("x</think><diagnosis>I21.4 NSTEMI</diagnosis>", "I21.4", "extra text around the code"),
        ("x</think><diagnosis>I10</diagnosis><diagnosis>I21.4</diagnosis>", "I21.4", "repeated <diagnosis> blocks (2)"),
        ("a<think>b</think>c</think><diagnosis>I10</diagnosis>", "I10", "nested <think> blocks"),
        ("x</think><diagnosis>J18.9", "J18.9", "unclosed diagnosis tag"),
        ("x</think>Final diagnosis: J18.9", "J18.9", "answer line"),
        ("no tags at all, maybe E11.9 or E11.65", "E11.65", "last code-shaped text"),
        ("x</think><diagnosis>I10</diagnosis> and more text", "I10", "text after </diagnosis>"),
    ],
)
def test_tolerant_extraction_finds_the_code_and_says_how(text, code, why_part):
    p = parse_response(text)
    assert p.format_ok is False
    assert p.code == code
    assert why_part in p.why


def test_missing_think_close_is_reported():
    p = parse_response("reasoning that never closes <diagnosis>K35.80</diagnosis>")
    assert not p.format_ok and p.code == "K35.80"
    assert "unbalanced <think> tags (1 opening, 0 closing)" in p.why
    assert p.trace == "reasoning that never closes"


def test_empty_and_codeless_responses():
    empty = parse_response("")
    assert (empty.code, empty.code_raw, empty.why) == (None, None, "empty response")
    words = parse_response("x</think><diagnosis>heart attack</diagnosis>")
    assert words.code is None and words.code_raw == "heart attack"
    assert "no code-shaped text inside the diagnosis block" in words.why
    nothing = parse_response("I am not sure what this patient has.")
    assert nothing.code is None and "no code-shaped text" in nothing.why


def test_free_text_prefers_dotted_codes_over_vitamin_names():
    p = parse_response("Low vitamin B12, but the picture fits D51.0 best")
    assert p.code == "D51.0"


def test_format_check_rejects_a_second_block_hidden_inside_the_first():
    assert not format_ok("x<diagnosis>I10</diagnosis></think><diagnosis>I10</diagnosis>")
    assert not format_ok("x</think><diagnosis>I10 I11</diagnosis>")
