"""Reward presets: the `deepicd-r1` preset (the default) scores as the authors' released GRPO reward does.

Worked examples written from the rule (docs/rewards.md), one per edge case, then a property test that compares the
preset with a short regular-expression restatement of the rule written here (a different code path from
icdreason.parse.pair_spans, which finds pairs without regular expressions). Gold `I2510` is a list, as verl passes it.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icdreason.cli import app
from icdreason.errors import UsageError
from icdreason.rewards import RewardConfig, find_pairs, score_batch, score_response

GOLD = ["I2510"]
TRACE = "Chest pain on exertion, known coronary disease, no troponin rise."


def deepicd(response: str, gold=GOLD):
    return score_response(response, gold)  # the default preset


def answer(code: str, trace: str = TRACE) -> str:
    """A well-formed rollout: it starts inside the prefilled <think>, the diagnosis on its own line."""
    return f"{trace}</think>\n<diagnosis>{code}</diagnosis>"


# (prediction, outcome term) for gold I2510 (|g| = 5): exact pays 15 x 5; otherwise 15 x (O/5 + (O - 2 if O >= 3)).
PARTIAL = [
    ("I2510", 75.0),  # exact: 15 x len(gold)
    ("I25.10", 75.0),  # dots are removed before comparing
    ("I.2.5.1.0", 75.0),  # every dot
    ("I251", 15 * (4 / 5 + 2)),  # O = 4: 42
    ("I25", 15 * (3 / 5 + 1)),  # O = 3: 24
    ("I25100", 15 * (5 / 5 + 3)),  # O = 5, longer than the gold code: 60, less than the exact 75
    ("I214", 15 * (2 / 5)),  # O = 2: no bonus, 6
    ("I99", 15 * (1 / 5)),  # O = 1: 3
    ("E119", -1.0),  # first letter differs: NO_MATCH_MALUS, no partial credit
    ("I2", -1.0),  # two characters fail the code pattern
    ("i2510", -1.0),  # the pattern is case-sensitive
    ("I25.10 - coronary disease", -1.0),  # text after the code
    ("I2510000", -1.0),  # eight characters
    ("Z3A01", -1.0),  # the published pattern wants two digits after the letter
    ("", -1.0),  # empty diagnosis
]


@pytest.mark.parametrize("prediction,outcome", PARTIAL)
def test_outcome_for_gold_I2510(prediction, outcome):
    r = deepicd(answer(prediction))
    assert r.components["outcome"] == pytest.approx(outcome)
    assert r.components["trace"] == 1.0  # paid for the think block, whatever the code
    assert r.components["format"] == 0.0 and r.components["length"] == 0.0 and r.components["judge"] == 0.0
    assert r.score == pytest.approx(outcome + 1.0)


def test_exact_match_pays_15_times_the_length_of_the_first_gold_code():
    assert deepicd(answer("I10"), ["I10"]).components["outcome"] == 45.0
    assert deepicd(answer("S72001A"), ["S72001A"]).components["outcome"] == 105.0
    assert deepicd(answer("S72001"), ["S72001A"]).components["outcome"] == pytest.approx(15 * (6 / 7 + 4))
    # with several gold codes the payout follows the FIRST gold code's length, as in the authors' code
    assert deepicd(answer("I2510"), ["I10", "I2510"]).components["outcome"] == 45.0
    # partial credit: among gold codes with the same first letter, the longest common prefix wins
    assert deepicd(answer("I251"), ["E119", "I2510"]).components["outcome"] == pytest.approx(42.0)


def test_a_gold_string_is_one_code_and_gold_is_normalised():
    # the authors' code would read a bare string as a set of characters; icdreason reads it as one code
    for gold in ("I2510", ["I2510"], "I25.10", " i25.10 ", {"ground_truth": "I25.10"}):
        assert deepicd(answer("I2510"), gold).score == 76.0, gold


def test_a_response_that_opens_its_own_think_scores_minus_one():
    # "<think>" is put in front of every response: "<think><think>…" is no pair at all
    r = deepicd(f"<think>{TRACE}</think><diagnosis>I2510</diagnosis>")
    assert r.components == {"format": 0.0, "outcome": -1.0, "length": 0.0, "trace": 0.0, "judge": 0.0}
    assert r.score == -1.0 and r.code is None
    # with the diagnosis on its own line a pair is found there, without its trace: 75, not 76
    assert deepicd(f"<think>{TRACE}</think>\n<diagnosis>I2510</diagnosis>").score == 75.0


def test_the_trace_is_paid_for_presence_even_when_blank():
    assert deepicd(answer("I2510", trace=" \n ")).components["trace"] == 1.0
    assert deepicd(answer("I2510", trace="")).components["trace"] == 0.0  # "</think>" right after the prefill
    assert deepicd(answer("I2510", trace="")).score == 75.0


def test_only_the_first_pair_counts_and_each_further_pair_costs_one():
    second = answer("I2510") + "\n<diagnosis>E119</diagnosis>"
    third = second + "\n<diagnosis>J189</diagnosis>"
    assert deepicd(second).components["format"] == -1.0 and deepicd(second).score == 75.0
    assert deepicd(third).components["format"] == -2.0 and deepicd(third).score == 74.0
    wrong_first = answer("E119") + "\n<diagnosis>I2510</diagnosis>"
    assert deepicd(wrong_first).components["outcome"] == -1.0 and deepicd(wrong_first).score == -1.0


def test_empty_response_costs_five_more():
    r = deepicd("")
    assert r.components == {"format": -5.0, "outcome": -1.0, "length": 0.0, "trace": 0.0, "judge": 0.0}
    assert r.score == -6.0
    assert deepicd(" ").score == -1.0 and deepicd("\n").score == -1.0  # not empty: just no pair


def test_a_pair_must_start_a_line():
    assert deepicd(f"{TRACE}</think> so: <diagnosis>I2510</diagnosis>").score == -1.0  # text before it
    assert deepicd(f"{TRACE}</think>\nso: <diagnosis>I2510</diagnosis>").score == -1.0
    # text on a line of its own between the blocks: the diagnosis line is a pair without a trace
    assert deepicd(f"{TRACE}</think>\nFinal answer:\n<diagnosis>I2510</diagnosis>").score == 75.0
    # a second pair on the same line as the first is not a pair: no penalty
    assert deepicd(answer("I2510") + "<diagnosis>E119</diagnosis>").score == 76.0
    # "\r" alone does not start a line; "\r\n" does (as whitespace before the next pair)
    assert deepicd(answer("I2510") + "\r<diagnosis>E119</diagnosis>").score == 76.0
    assert deepicd(answer("I2510") + "\r\n<diagnosis>E119</diagnosis>").score == 75.0


def test_crlf_and_surrounding_whitespace():
    assert deepicd(f"{TRACE}</think>\r\n\r\n<diagnosis>\r\nI25.10\r\n</diagnosis>\r\n").score == 76.0
    assert deepicd(f"\n{TRACE}</think>\t\xa0<diagnosis>I2510</diagnosis> trailing text").score == 76.0


def test_nested_tags():
    # a nested <think> breaks the first block; the diagnosis line still pairs, without a trace
    assert deepicd(f"{TRACE} <think>again</think>\n<diagnosis>I2510</diagnosis>").score == 75.0
    # a nested <diagnosis> breaks the only diagnosis block
    assert deepicd(f"{TRACE}</think>\n<diagnosis><diagnosis>I2510</diagnosis></diagnosis>").score == -1.0
    # other tags and "<" inside the blocks are plain text
    assert deepicd(answer("I2510", trace="BP <90, <b>sepsis</b>?")).score == 76.0
    # a missing </diagnosis> (a response cut off at the token limit) is no pair
    assert deepicd(f"{TRACE}</think>\n<diagnosis>I25").score == -1.0


def test_the_code_pattern_is_checked_as_re_match_does():
    # re.match("^...$") also accepts one newline before the end: "I2510\n." becomes "I2510\n" (not the gold code,
    # but sharing all five characters: 15 x (5/5 + 3))
    assert deepicd(answer("I2510\n.")).components["outcome"] == 60.0


def test_find_pairs():
    assert find_pairs(answer("I2510", trace="r")) == [("r", "I2510")]
    assert find_pairs("r</think>\n<diagnosis>A</diagnosis>\n \n<diagnosis> B </diagnosis>") == [("r", "A"),
                                                                                                ("", " B ")]
    assert find_pairs("<think>r</think><diagnosis>A</diagnosis>") == []


# ---------------------------------------------------------------------------------------------------------------
# the judge term's gate (the judge itself is tested in test_judge.py)


def test_without_a_judge_server_the_judge_term_is_off_and_said_to_depart_from_the_paper():
    from icdreason.rewards.presets import departures

    cfg = RewardConfig()
    assert cfg.preset == "deepicd-r1" and cfg.components == ("format", "outcome", "trace")
    assert "departs from the paper" in departures(cfg)[0]
    on = RewardConfig(judge_url="http://127.0.0.1:9/v1")
    assert on.components == ("format", "outcome", "trace", "judge")
    assert on.judge_model == "meta-llama/Llama-3.1-8B-Instruct" and on.judge_scale == 0.8
    with pytest.raises(UsageError, match="--judge-url and --judge-model"):
        RewardConfig(components=("outcome", "judge"))  # asked for explicitly: an error, not silently off


def test_the_judge_is_not_asked_about_dotted_codes_blank_traces_or_missing_pairs():
    cfg = RewardConfig(judge_url="http://127.0.0.1:9/v1")  # never contacted: every response below is gated
    responses = [answer("I25.10"), answer("I2510", trace=" \n"), "no pair", answer("i2510")]
    results = score_batch(responses, [GOLD] * 4, config=cfg, judge=object())
    assert [r.components["judge"] for r in results] == [-0.8] * 4
    assert [r.score for r in results] == [pytest.approx(x) for x in (75.2, 75.2, -1.8, -0.8)]


# ---------------------------------------------------------------------------------------------------------------
# the other presets


def test_icdreason_preset_keeps_the_earlier_values():
    cfg = RewardConfig(preset="icdreason")
    r = score_response(answer("I25.10"), GOLD, config=cfg)
    assert cfg.rule == "icdreason" and cfg.components == ("format", "outcome", "length", "trace")
    assert r.components["format"] == 1.0 and r.components["trace"] == 0.1 and r.components["outcome"] == 75.0
    assert score_response(answer("E119"), GOLD, config=cfg).components["outcome"] == pytest.approx(15 * 0 - 0.2)


def test_authors_readme_preset_scores_every_pair():
    cfg = RewardConfig(preset="authors-readme")
    one = answer("I25.10")
    r = score_response(one, GOLD, config=cfg)
    # one exact match pays MATCH_REWARD once (not x length); 0.1 per trace; -1e-4 per character
    assert r.components == {"format": 0.0, "outcome": 15.0, "length": pytest.approx(-1e-4 * len(one)),
                            "trace": 0.1, "judge": 0.0}
    two = one + "\n<diagnosis>E119</diagnosis>"  # a second prediction that matches nothing: -0.2
    assert score_response(two, GOLD, config=cfg).components["outcome"] == pytest.approx(14.8)
    text = answer("coronary artery disease")  # not a code (their Meilisearch lookup is not reproduced)
    assert score_response(text, GOLD, config=cfg).components["outcome"] == pytest.approx(-0.2)
    assert score_response("no pair", GOLD, config=cfg).components["outcome"] == 0.0
    empty = score_response("", GOLD, config=cfg)  # NO_GEN_MALUS twice: once as itself, once for a 0 length term
    assert empty.components["format"] == -5.0 and empty.components["length"] == -5.0 and empty.score == -10.0


# ---------------------------------------------------------------------------------------------------------------
# settings: origins, booleans, the preset through the environment (verl's workers)


def test_every_value_says_where_it_came_from(tmp_path, monkeypatch):
    yaml_file = tmp_path / "reward.yaml"
    yaml_file.write_text("reward:\n  match_weight: 10\n")
    monkeypatch.setenv("ICDREASON_REWARD_CONFIG", str(yaml_file))
    monkeypatch.setenv("ICDREASON_REWARD_PRESET", "icdreason")
    monkeypatch.setenv("ICDREASON_REWARD_TRACE_REWARD", "0.5")
    cfg = RewardConfig.from_dict({"length_malus": "0"}, base=RewardConfig.from_env(), origin="verl reward_kwargs")
    origins = cfg.origins()
    assert cfg.preset == "icdreason" and origins["preset"] == "env ICDREASON_REWARD_PRESET"
    assert cfg.match_weight == 10.0 and origins["match_weight"].startswith(f"YAML {yaml_file}")
    assert cfg.trace_reward == 0.5 and origins["trace_reward"] == "env ICDREASON_REWARD_TRACE_REWARD"
    assert cfg.length_malus == 0.0 and origins["length_malus"] == "verl reward_kwargs"
    assert cfg.no_overlap_penalty == -0.2 and origins["no_overlap_penalty"] == "preset icdreason"
    # changing the preset re-derives what came from the preset and keeps what was set explicitly
    back = RewardConfig.from_dict({"preset": "deepicd-r1"}, base=cfg, origin="flag --preset")
    assert back.no_overlap_penalty == -1.0 and back.match_weight == 10.0 and back.trace_reward == 0.5


def test_verl_workers_take_the_preset_from_the_environment(monkeypatch):
    from icdreason.rewards import compute_score_batch

    response = answer("I25.10")
    assert compute_score_batch(["d"], [response], [GOLD], [{}])[0]["score"] == 76.0  # deepicd-r1
    monkeypatch.setenv("ICDREASON_REWARD_PRESET", "icdreason")
    out = compute_score_batch(["d"], [response], [GOLD], [{}])[0]
    assert out["format"] == 1.0 and out["trace"] == 0.1 and out["length"] == pytest.approx(-1e-4 * len(response))
    # verl's reward_kwargs win over the environment
    assert compute_score_batch(["d"], [response], [GOLD], [{}], preset="deepicd-r1")[0]["score"] == 76.0


def test_settings_from_one_source_are_applied_together():
    # the judge component and its server may come from different variables (or flags) of the same layer
    cfg = RewardConfig.from_env({"ICDREASON_REWARD_COMPONENTS": "outcome,judge",
                                 "ICDREASON_REWARD_JUDGE_URL": "http://127.0.0.1:9/v1"})
    assert cfg.components == ("outcome", "judge") and cfg.judge_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.origins()["judge_url"] == "env ICDREASON_REWARD_JUDGE_URL"


@pytest.mark.parametrize("text,value", [("true", True), ("False", False), ("0", False), ("1", True),
                                        ("no", False), ("YES", True), ("off", False)])
def test_boolean_settings_are_parsed_properly(text, value):
    # (the authors' bool(os.getenv(...)) turns "False", "0" and "no" into True)
    assert RewardConfig.from_dict({"judge_rag": text}).judge_rag is value


def test_boolean_setting_rejects_anything_else():
    with pytest.raises(UsageError, match="judge_rag expects true or false"):
        RewardConfig.from_dict({"judge_rag": "maybe"})
    with pytest.raises(UsageError, match="unknown reward preset 'deepicd'"):
        RewardConfig(preset="deepicd")


def test_cli_settings_show_the_preset_origins_and_the_departure(runner, monkeypatch):
    monkeypatch.setenv("ICDREASON_REWARD_MATCH_WEIGHT", "12")
    result = runner.invoke(app, ["reward", "settings", "--set", "trace_reward=2"])
    assert result.exit_code == 0, result.output
    assert "Reward preset: deepicd-r1 (default)" in result.stdout
    rows = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines() if line.count("│") == 5)
        if cells[0]}
    assert rows["match_weight"][:2] == ["12.0", "env ICDREASON_REWARD_MATCH_WEIGHT"]
    assert rows["trace_reward"][:2] == ["2.0", "flag --set"]
    assert rows["judge_scale"][0] == "0.8" and rows["judge_scale"][1].startswith("preset deepicd-r1: LLM_REWARD")
    assert "departs from the paper" in " ".join(result.stdout.split())
    other = runner.invoke(app, ["reward", "settings", "--preset", "icdreason"])
    assert "Reward preset: icdreason (flag --preset)" in other.stdout and "departs" not in other.stdout


def test_cli_score_uses_the_paper_reward_by_default(tmp_path, runner):
    rows = [{"id": "a", "response": answer("I25.10"), "gold": "I2510"},
            {"id": "b", "response": f"<think>{TRACE}</think><diagnosis>I2510</diagnosis>", "gold": "I2510"},
            {"id": "c", "response": "", "gold": "I2510"}]
    f = tmp_path / "r.jsonl"
    f.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["reward", "score", str(f)])
    assert result.exit_code == 0, result.output
    assert "preset deepicd-r1, rule single-trace" in " ".join(result.stdout.split())
    score_row = next(line for line in result.stdout.splitlines() if line.startswith("│ score"))
    assert [c.strip() for c in score_row.split("│")[2:5]] == ["23.0000", "-6.0000", "76.0000"]  # (76 - 1 - 6) / 3
    assert "the LLM-judge term is off" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# the property test: the preset against a restatement of the rule with regular expressions


def _block(tag: str) -> str:  # a block whose text contains neither the opening nor the closing tag
    return f"<{tag}>((?:(?!</?{tag}>).)*)</{tag}>"


PAIR = re.compile(rf"^\s*(?:{_block('think')})?\s*{_block('diagnosis')}", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"^[A-Z][0-9]{2}[A-Z0-9]{0,4}$")


def restated(response: str, gold: str) -> float:
    """The single-trace rule in a few lines (gold: one undotted code)."""
    pairs = PAIR.findall("<think>" + response)
    total = (-5.0 if response == "" else 0.0) - max(0, len(pairs) - 1)
    if not pairs:
        return total - 1
    trace, diagnosis = pairs[0]
    total += 1.0 if trace else 0.0
    code = diagnosis.strip().replace(".", "")
    if not CODE.match(code):
        return total - 1
    if code == gold:
        return total + 15 * len(gold)
    if code[0] != gold[0]:
        return total - 1
    o = len(os.path.commonprefix([code, gold]))
    return total + 15 * (o / len(gold) + (o - 2 if o >= 3 else 0))


FRAGMENTS = ["<think>", "</think>", "<diagnosis>", "</diagnosis>", "I25.10", "I2510", "i2510", "I25", "I251",
             "E11.9", "I2510000", "I25.10 - CAD", ".", " ", "\n", "\r\n", "\r", "\t", "\xa0", "<", "/", "think>",
             "diagnosis>", "Final answer:", "reasoning", "BP <90"]
GOLDS = ["I2510", "I10", "E119", "S72001A", "I251"]


# responses shaped like rollouts (an own <think> or not, blank or odd traces, separators, extra pairs) ...
SHAPED = st.builds(
    lambda opening, trace, close, sep, code, tail: f"{opening}{trace}{close}{sep}<diagnosis>{code}</diagnosis>{tail}",
    st.sampled_from(["", "<think>", "\n", " "]),
    st.sampled_from(["", " ", "\n", " \n\t", "reasoning", "BP <90", "<think>x", "a<diagnosis>b</diagnosis>"]),
    st.sampled_from(["</think>", "", "</think></think>"]),
    st.sampled_from(["", "\n", "\r\n", " ", "\nFinal answer:\n", " so ", "\r", "\n\xa0"]),
    st.sampled_from(["I2510", "I25.10", " I25.10 ", "I251", "I25", "I2", "E11.9", "i2510", "I10", "S72.001A", "",
                     "I2510\n.", "I25.10 - CAD"]),
    st.lists(st.sampled_from(["\n<diagnosis>E119</diagnosis>", "<diagnosis>I10</diagnosis>", "\n", " done",
                              "\r\n<diagnosis>I25</diagnosis>", "</diagnosis>"]), max_size=3).map("".join),
)
# ... and any sequence of tags, codes and whitespace
SOUP = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(SHAPED, SOUP), st.sampled_from(GOLDS))
def test_preset_equals_the_restated_rule_on_generated_responses(response, gold):
    assert find_pairs(response) == PAIR.findall("<think>" + response), response
    assert deepicd(response, gold).score == pytest.approx(restated(response, gold), rel=1e-12, abs=1e-12), response
