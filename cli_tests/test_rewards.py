"""icdreason's own reward rule (the `icdreason` preset) on hand-worked examples, and the verl / trl signatures called
the way those libraries call them. The default `deepicd-r1` preset has its own tests in test_reward_presets.py."""

from __future__ import annotations

import importlib.util
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from icdreason.errors import InputError, UsageError
from icdreason.rewards import (
    COMPONENTS,
    RewardConfig,
    completion_text,
    compute_score,
    compute_score_batch,
    reward_functions,
    score_batch,
    score_response,
    split_response,
)

ROOT = Path(__file__).resolve().parents[1]
ICDREASON = RewardConfig(preset="icdreason")


def score_icd(response, gold, config=None):
    """score_response with the `icdreason` preset (icdreason's own rule and values)."""
    return score_response(response, gold, config=config or ICDREASON)


def wrap(code: str, trace: str = "Back pain radiating to the leg; MRI shows disc herniation.") -> str:
    """A well-formed response as a rollout produces it (starting inside the prefilled <think>)."""
    return f"{trace}</think>\n<diagnosis>{code}</diagnosis>"


# Gold M51.16 (|g| = 5 undotted characters). Outcome = 15 * (O/|g| + (O-2 if O >= 3)); exact = 15 * |g|.
HIERARCHY = [
    ("K21.9", 0, 0 * 15 - 0.2),  # no overlap: only the -0.2 malus
    ("M25.50", 1, 15 * (1 / 5)),  # 3.0: chapter letter only
    ("M54.5", 2, 15 * (2 / 5)),  # 6.0
    ("M51.9", 3, 15 * (3 / 5 + 1)),  # 24.0: category reached, bonus 1
    ("M51.17", 4, 15 * (4 / 5 + 2)),  # 42.0
    ("M51.160", 5, 15 * (5 / 5 + 3)),  # 60.0: contains the gold code but is longer
    ("M51.16", 5, 15 * 5),  # 75.0: exact match, the maximum
]


@pytest.mark.parametrize("pred,prefix,outcome", HIERARCHY)
def test_hierarchical_outcome_every_prefix_length(pred, prefix, outcome):
    r = score_icd(wrap(pred), "M5116")
    assert r.prefix == prefix
    assert r.components["outcome"] == pytest.approx(outcome)
    assert r.exact == (pred == "M51.16")


def test_exact_match_is_the_unique_maximum_for_every_gold_length():
    for gold in ["I10", "J189", "M5116", "I25110", "S72001A"]:
        exact = score_icd(wrap(gold), gold).components["outcome"]
        assert exact == pytest.approx(15 * len(gold))
        for o in range(len(gold) + 1):
            near = gold[:o] + ("9" if o < len(gold) and gold[o] != "9" else "8") + "0" * 2
            near = near[:7] if len(near) > 7 else near
            r = score_icd(wrap(near), gold)
            if not r.exact:
                assert r.components["outcome"] < exact


def test_outcome_values_for_a_seven_character_code():
    # S72.001A: O=3 -> 3/7 + 1, O=6 -> 6/7 + 4, exact -> 7
    assert score_icd(wrap("S72.9XXA"), "S72.001A").components["outcome"] == pytest.approx(15 * (3 / 7 + 1))
    assert score_icd(wrap("S72.001D"), "S72.001A").components["outcome"] == pytest.approx(15 * (6 / 7 + 4))
    assert score_icd(wrap("S72001A"), "S72.001A").components["outcome"] == pytest.approx(105.0)


def test_literal_equation_one_pays_for_no_overlap():
    literal = RewardConfig(preset="icdreason", prefix_bonus="literal")
    assert score_icd(wrap("K21.9"), "M5116", config=literal).components["outcome"] == pytest.approx(15 * 2 - 0.2)
    assert score_icd(wrap("M25.50"), "M5116", config=literal).components["outcome"] == pytest.approx(15 * 1.2)
    assert score_icd(wrap("K21.9"), "M5116").components["outcome"] == pytest.approx(-0.2)


def test_full_score_of_a_well_formed_exact_response():
    response = wrap("I21.4", trace="Chest pain, troponin rise, ST depression.")
    r = score_icd(response, "I214")
    assert r.format_ok
    assert r.components == {
        "format": 1.0,
        "outcome": 60.0,
        "length": pytest.approx(-1e-4 * len(response)),
        "trace": 0.1,
        "judge": 0.0,
    }
    assert r.score == pytest.approx(61.1 - 1e-4 * len(response))


@pytest.mark.parametrize(
    "response",
    [
        "<think>reasoning</think><diagnosis>I21.4</diagnosis>",
        "\n<think>reasoning</think>\n\n<diagnosis> I21.4 </diagnosis>\n",
        "reasoning</think><diagnosis>I214</diagnosis>",
    ],
)
def test_with_and_without_the_opening_think(response):
    r = score_icd(response, "I21.4")
    assert r.format_ok and r.exact and r.components["format"] == 1.0 and r.components["trace"] == 0.1


@pytest.mark.parametrize(
    "response,why",
    [
        ("reasoning</think><diagnosis>i21.4</diagnosis>", "lower case fails the published pattern"),
        ("reasoning</think><diagnosis>I21.4 acute MI</diagnosis>", "text after the code"),
        ("reasoning</think><diagnosis>Z3A.01</diagnosis>", "third character a letter (paper pattern)"),
        ("reasoning</think><diagnosis></diagnosis>", "empty diagnosis"),
        ("reasoning</think>the answer is I21.4", "no diagnosis block"),
        ("reasoning <diagnosis>I21.4</diagnosis>", "no closed reasoning block"),
        ("<diagnosis>I21.4</diagnosis>", "reasoning skipped"),
    ],
)
def test_malformed_or_missing_diagnosis(response, why):
    r = score_icd(response, "I21.4")
    assert r.components["outcome"] == -1.0, why
    assert r.components["format"] == 0.0 and not r.format_ok and r.code is None


@pytest.mark.parametrize("response", ["", "   \n\t"])
def test_empty_generation(response):
    r = score_icd(response, "I21.4")
    assert r.components == {"format": -5.0, "outcome": -1.0, "length": pytest.approx(-1e-4 * len(response)),
                            "trace": 0.0, "judge": 0.0}


def test_extra_diagnosis_blocks_are_penalised_each():
    two = "r</think><diagnosis>I21.4</diagnosis><diagnosis>I10</diagnosis>"
    three = two + "<diagnosis>E11.9</diagnosis>"
    r2, r3 = score_icd(two, "I214"), score_icd(three, "I214")
    assert not r2.format_ok and r2.components["format"] == -1.0 and r3.components["format"] == -2.0
    assert r2.exact and r3.exact  # the first block after </think> is the one that counts


def test_a_diagnosis_inside_the_reasoning_does_not_count():
    r = score_icd("maybe <diagnosis>I10</diagnosis>?</think><diagnosis>I21.4</diagnosis>", "I214")
    assert r.code == "I214" and r.exact and r.components["format"] == -1.0


def test_structure_checks_of_the_format_reward():
    assert not score_icd("r</think> so: <diagnosis>I10</diagnosis>", "I10").format_ok  # text between
    assert not score_icd("r</think><diagnosis>I10</diagnosis> done", "I10").format_ok  # text after
    assert not score_icd("<think>a</think><think>b</think><diagnosis>I10</diagnosis>", "I10").format_ok
    assert not score_icd("preamble <think>r</think><diagnosis>I10</diagnosis>", "I10").format_ok
    # the outcome still counts where the diagnosis follows a closed reasoning block
    assert score_icd("r</think> so: <diagnosis>I10</diagnosis>", "I10").exact


def test_trace_and_length_terms():
    assert score_icd(" \n</think><diagnosis>I10</diagnosis>", "I10").components["trace"] == 0.0
    long = wrap("I10", trace="x" * 5000)
    assert score_icd(long, "I10").components["length"] == pytest.approx(-1e-4 * len(long))


def test_component_selection_and_custom_weights():
    cfg = RewardConfig(preset="icdreason", components=("outcome",), match_weight=1.0)
    r = score_icd(wrap("M51.9"), "M5116", config=cfg)
    assert r.score == pytest.approx(3 / 5 + 1)
    assert r.components["format"] == 0.0 and r.components["length"] == 0.0
    assert RewardConfig(components="format, trace").components == ("format", "trace")


def test_several_gold_codes_best_match_counts():
    r = score_icd(wrap("I10"), ["E11.9", "I10"])
    assert r.exact and r.gold == "I10"


def test_split_response_parts():
    parts = split_response("Fever and cough.</think>\n<diagnosis>J18.9</diagnosis>")
    assert parts.trace == "Fever and cough." and parts.diagnosis == "J18.9" and parts.code == "J189"
    assert parts.format_ok and parts.diagnosis_blocks == 1 and not parts.empty


def test_config_errors_name_the_fix():
    with pytest.raises(UsageError, match="unknown reward setting"):
        RewardConfig.from_dict({"match_wieght": 3})
    with pytest.raises(UsageError, match="unknown reward component"):
        RewardConfig(components=("format", "style"))
    with pytest.raises(UsageError, match="judge_url"):
        RewardConfig(components=("judge",))
    with pytest.raises(UsageError, match="^reward setting match_weight expects a number, got 'lots'$"):
        RewardConfig.from_dict({"match_weight": "lots"})
    assert all(help_text for _, _, help_text in RewardConfig().help_table())


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="^reward config not found: .*missing.yaml$"):
        RewardConfig.load(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- match_weight\n")
    with pytest.raises(InputError, match="list.yaml: expected a mapping of reward settings$"):
        RewardConfig.load(tmp_path / "list.yaml")


def test_config_from_env_and_yaml(tmp_path, monkeypatch):
    yaml_file = tmp_path / "reward.yaml"
    yaml_file.write_text("reward:\n  match_weight: 10\n  components: [format, outcome]\n")
    monkeypatch.setenv("ICDREASON_REWARD_CONFIG", str(yaml_file))
    monkeypatch.setenv("ICDREASON_REWARD_TRACE_REWARD", "0.5")
    cfg = RewardConfig.from_env()
    assert cfg.match_weight == 10.0 and cfg.components == ("format", "outcome") and cfg.trace_reward == 0.5


# --------------------------------------------------------------------------------------------------------------
# verl


def load_reward_file():
    """Load train/reward_fn.py by path, as verl's load_extern_object does."""
    spec = importlib.util.spec_from_file_location("custom_module", ROOT / "train" / "reward_fn.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_module"] = module
    spec.loader.exec_module(module)
    return module


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):
    # verl.trainer.ppo.reward._call_with_kwargs: reward_kwargs take precedence over call-time kwargs
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


def test_verl_naive_manager_call():
    module = load_reward_file()
    fn = partial(_call_with_kwargs, module.compute_score, {"match_weight": 10})
    extra_info = {"id": "n1", "note": "chest pain", "num_turns": None, "rollout_reward_scores": {}}
    out = fn(data_source="mimic-iv-icd10", solution_str=wrap("I21.4"), ground_truth="I214", extra_info=extra_info)
    assert set(out) == {"score", *COMPONENTS, "prefix", "exact", "format_ok"}
    assert out["outcome"] == 40.0 and out["exact"] == 1.0
    assert all(isinstance(v, float) for v in out.values())
    # every response returns the same keys (verl stacks them per key)
    bad = fn(data_source="mimic-iv-icd10", solution_str="", ground_truth="I214", extra_info=extra_info)
    assert set(bad) == set(out)


def test_verl_batch_manager_call():
    module = load_reward_file()
    responses = [wrap("I21.4"), wrap("I21.9"), "", wrap("K21.9")] * 2
    out = module.compute_score_batch(
        data_sources=np.array(["mimic-iv-icd10"] * 8, dtype=object),
        solution_strs=responses,
        ground_truths=["I214"] * 8,
        extra_infos=np.array([{"note": "n", "rollout_reward_scores": {}} for _ in range(8)], dtype=object),
    )
    # the default preset (deepicd-r1): a code with another first letter costs NO_MATCH_MALUS = -1
    assert [round(o["outcome"], 4) for o in out[:4]] == [60.0, 15 * (3 / 4 + 1), -1.0, -1.0]
    assert [o["score"] for o in out[:4]] == [61.0, 15 * (3 / 4 + 1) + 1, -6.0, 0.0]
    assert out[:4] == out[4:]


def test_verl_unknown_reward_kwarg_fails_fast():
    with pytest.raises(UsageError, match="unknown reward setting"):
        compute_score("d", wrap("I10"), "I10", {}, match_weigth=3)
    # verl's own extras are not reward settings
    assert compute_score("d", wrap("I10"), "I10", {}, reward_router_address=None)["exact"] == 1.0


def test_verl_reads_environment_settings(monkeypatch):
    monkeypatch.setenv("ICDREASON_REWARD_COMPONENTS", "outcome")
    out = compute_score_batch(["d"], [wrap("I10")], ["I10"], [{}])
    assert out[0]["score"] == 45.0 and out[0]["format"] == 0.0


# --------------------------------------------------------------------------------------------------------------
# trl


def _trl_kwargs(golds):
    # GRPOTrainer._calculate_rewards passes every dataset column plus these
    return {
        "completion_ids": [[1, 2]] * len(golds),
        "reward_model": [{"style": "rule", "ground_truth": g} for g in golds],
        "extra_info": [{"note": "note", "id": str(i)} for i in range(len(golds))],
        "data_source": ["mimic-iv-icd10"] * len(golds),
        "trainer_state": None,
        "log_extra": lambda *a, **k: None,
        "log_metric": lambda *a, **k: None,
    }


def test_trl_plain_and_conversational_completions_sum_to_the_score():
    funcs = reward_functions()
    assert [f.__name__ for f in funcs] == ["format", "outcome", "trace"]  # deepicd-r1 without a judge server
    texts = [wrap("I21.4"), wrap("M51.9"), ""]
    golds = ["I214", "M5116", "I10"]
    expected = [r.score for r in score_batch(texts, golds)]
    plain = [sum(vals) for vals in zip(*(f(prompts=["p"] * 3, completions=texts, **_trl_kwargs(golds)) for f in funcs))]
    conv = [[{"role": "assistant", "content": t}] for t in texts]
    chat = [sum(vals) for vals in zip(*(f(prompts=[[{"role": "user", "content": "p"}]] * 3, completions=conv,
                                         **_trl_kwargs(golds)) for f in funcs))]
    assert plain == pytest.approx(expected) and chat == pytest.approx(expected)


def test_trl_reasoning_content_is_put_back_into_the_think_block():
    completion = [[{"role": "assistant", "reasoning_content": "Fever.", "content": "<diagnosis>J18.9</diagnosis>"}]]
    assert completion_text(completion[0]) == "Fever.</think><diagnosis>J18.9</diagnosis>"
    outcome, trace = reward_functions(components=["outcome", "trace"])  # deepicd-r1
    assert outcome(prompts=["p"], completions=completion, code=["J189"]) == [60.0]
    assert trace(prompts=["p"], completions=completion, code=["J189"]) == [1.0]
    icd_outcome, icd_format = reward_functions(ICDREASON, components=["outcome", "format"])
    assert icd_outcome(prompts=["p"], completions=completion, code=["J189"]) == [60.0]
    assert icd_format(prompts=["p"], completions=completion, code=["J189"]) == [1.0]


# --------------------------------------------------------------------------------------------------------------
# one definition of the paper's format check: the reward agrees with icdreason.parse

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FRAGMENTS = ["<think>", "</think>", "<diagnosis>", "</diagnosis>", "I21.4", "i21.4", "Z3A.01", "M51", " ", "\n",
             "reasoning", ".", "code: I10"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=9))
def test_format_check_agrees_with_the_parser(pieces):
    from icdreason.parse import format_ok

    text = "".join(pieces)
    assert split_response(text).format_ok == format_ok(text), text
