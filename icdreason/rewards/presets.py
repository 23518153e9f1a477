"""Reward presets: named sets of reward settings, each with the rule it scores by and where its values come from.

- ``deepicd-r1`` (the default): the reward the released models were trained with — the paper's GRPO jobs
  (DATEXIS/DeepICD-R1 ``k8s/train/grpo_train_job_7b.yaml`` and ``grpo_train_job_32b.yaml`` at commit
  80f64850ee6c9adeae1bced4f01912e3b195f026): the batched single-trace function with the LLM judge.
- ``icdreason``: icdreason's own reading and format check, with the values icdreason used before presets existed.
- ``authors-readme``: the authors' README command (the multi-trace function with a length term) with their code's
  default constants. Its diagnosis-to-code step went through a Meilisearch index that is not published; here the
  code is read from the text as written (see :data:`PRESETS` notes).

A preset supplies *defaults*: a value set anywhere else (YAML, environment, flag, verl ``reward_kwargs``) wins.
``docs/rewards.md`` has the table of every value and its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

__all__ = ["DEFAULT_PRESET", "PRESETS", "RULES", "UNUSED_BY_RULE", "Preset", "default_components", "departures",
           "get_preset"]

#: The rules a preset can score by (``RewardConfig.rule``).
RULES = ("single-trace", "multi-trace", "icdreason")
#: Settings a rule does not read (``reward settings`` marks them).
UNUSED_BY_RULE = {
    "single-trace": frozenset({"format_reward"}),
    "multi-trace": frozenset({"format_reward", "malformed_penalty", "extra_block_penalty"}),
    "icdreason": frozenset(),
}

DEFAULT_PRESET = "deepicd-r1"

#: Values every preset shares (the judge client's plumbing).
_COMMON: dict[str, Any] = {
    "judge_url": None,
    "judge_api_key_env": "ICDREASON_JUDGE_API_KEY",
    "judge_timeout": 60.0,
    "judge_concurrency": 16,
    "judge_guided": "structured_outputs",
    "judge_cache": None,
    "judge_prompt": None,
    "judge_rag": True,
    "bonus_from": 3,
    "prefix_bonus": "released",
}


@dataclass(frozen=True)
class Preset:
    """A named set of reward defaults: the values, where each comes from, and what it cannot reproduce."""

    name: str
    summary: str
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)  # field -> where the value comes from
    notes: tuple[str, ...] = ()  # what differs from the original, always true of this preset

    def value(self, name: str) -> Any:
        return self.values[name] if name in self.values else _COMMON[name]

    def source(self, name: str) -> str:
        return self.sources.get(name, "")


_JOB = "grpo_train_job_7b.yaml"
_CODE = "rewards.py default"

PRESETS: dict[str, Preset] = {
    "deepicd-r1": Preset(
        name="deepicd-r1",
        summary="the paper's GRPO jobs: single-trace function + LLM judge (DATEXIS/DeepICD-R1 @ 80f6485)",
        values={
            "rule": "single-trace",
            "components": ("format", "outcome", "trace", "judge"),
            "format_reward": 0.0,
            "match_weight": 15.0,
            "no_overlap_penalty": -1.0,
            "malformed_penalty": -1.0,
            "empty_penalty": -5.0,
            "extra_block_penalty": -1.0,
            "length_malus": 0.0,
            "trace_reward": 1.0,
            "judge_scale": 0.8,
            "judge_neutral": 0.0,
            "judge_skip_score": -1.0,
            "judge_model": "meta-llama/Llama-3.1-8B-Instruct",
        },
        sources={
            "rule": "custom_reward_function.name in " + _JOB,
            "components": "the job's function: outcome, trace, extra pairs/empty, judge; no length term",
            "format_reward": "the single-trace function pays no format bonus",
            "match_weight": "MATCH_REWARD=15 in " + _JOB,
            "no_overlap_penalty": "NO_MATCH_MALUS=-1 in " + _JOB,
            "malformed_penalty": "hard-coded -1 (no pair, or code failing the pattern)",
            "empty_penalty": "NO_GEN_MALUS, " + _CODE,
            "extra_block_penalty": "hard-coded -1.0 per pair beyond the first",
            "length_malus": "the job's function has no length term",
            "trace_reward": "THINK_TRACE_REWARD=1 in " + _JOB,
            "judge_scale": "LLM_REWARD_SCALING=0.8 in " + _JOB,
            "judge_neutral": "a judge reply that is not JSON scores 0",
            "judge_skip_score": "hard-coded -1 (times the scale) when the judge is not asked",
            "judge_model": "JUDGE_MODEL_NAME in " + _JOB,
            "judge_rag": "JUDGE_RAG_ENABLED=True in " + _JOB,
            "bonus_from": "O-2 bonus from O >= 3 in their partial-credit code",
            "prefix_bonus": "their partial-credit code",
        },
    ),
    "icdreason": Preset(
        name="icdreason",
        summary="icdreason's own reading and format check (the values before presets existed)",
        values={
            "rule": "icdreason",
            "components": ("format", "outcome", "length", "trace"),
            "format_reward": 1.0,
            "match_weight": 15.0,
            "no_overlap_penalty": -0.2,
            "malformed_penalty": -1.0,
            "empty_penalty": -5.0,
            "extra_block_penalty": -1.0,
            "length_malus": -1e-4,
            "trace_reward": 0.1,
            "judge_scale": 0.05,
            "judge_neutral": 3.0,
            "judge_skip_score": 0.0,
            "judge_model": None,
        },
        sources={name: "icdreason" for name in ("rule", "components", "format_reward", "judge_neutral",
                                                 "judge_skip_score")},
    ),
    "authors-readme": Preset(
        name="authors-readme",
        summary="the authors' README command: multi-trace function with length term, code defaults",
        values={
            "rule": "multi-trace",
            "components": ("format", "outcome", "length", "trace"),
            "format_reward": 0.0,
            "match_weight": 15.0,
            "no_overlap_penalty": -0.2,
            "malformed_penalty": 0.0,
            "empty_penalty": -5.0,
            "extra_block_penalty": 0.0,
            "length_malus": -1e-4,
            "trace_reward": 0.1,
            "judge_scale": 0.05,
            "judge_neutral": 0.0,
            "judge_skip_score": 0.0,
            "judge_model": None,
        },
        sources={
            "rule": "README: verl_batched_compute_score_multiple_think_traces_and_length",
            "components": "the README function: outcome, trace per pair, length, empty; no judge",
            "match_weight": "MATCH_REWARD, " + _CODE + " (paid once per matched gold code, not x length)",
            "no_overlap_penalty": "NO_MATCH_MALUS, " + _CODE + " (per unmatched prediction and per no-hit)",
            "empty_penalty": "NO_GEN_MALUS, " + _CODE + " (paid twice for an empty response)",
            "length_malus": "LENGTH_MALUS, " + _CODE,
            "trace_reward": "THINK_TRACE_REWARD, " + _CODE + " (per pair with a trace)",
            "judge_scale": "LLM_REWARD_SCALING, " + _CODE + " (the README function has no judge)",
        },
        notes=(
            "authors-readme: each diagnosis is read as a code from the text as written (stripped, dots removed, "
            "checked against the code pattern); the authors' function looked the text up in a Meilisearch index "
            "(mimic_icd_10_codes) that is not published, so text answers and codes the index would rank "
            "differently score differently from their runs",
        ),
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; the error lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown reward preset {name!r} (choose from {', '.join(PRESETS)})") from None


def default_components(name: str, *, judge: bool) -> list[str]:
    """A preset's components; its judge term only when a judge server is configured (``judge``)."""
    return [c for c in get_preset(name).values["components"] if judge or c != "judge"]


def departures(config: Any) -> list[str]:
    """Plain statements of where a resolved :class:`~icdreason.rewards.RewardConfig` departs from its preset's
    original (the paper's reward for ``deepicd-r1``): shown by ``reward settings``, ``reward score`` and dry runs."""
    preset = get_preset(config.preset)
    notes = list(preset.notes)
    if config.preset == "deepicd-r1":
        if "judge" not in config.components and "judge" in preset.values["components"]:
            why = "no judge_url" if not config.judge_url else "components set without judge"
            notes.append(f"the LLM-judge term is off ({why}): this departs from the paper, whose reward adds "
                         "0.8 x a 1-5 score from meta-llama/Llama-3.1-8B-Instruct (or -0.8 when the judge is not "
                         "asked); pass --judge-url (and --judge-model) to turn it on")
        elif "judge" in config.components and not config.judge_prompt:
            notes.append("the judge uses icdreason's own prompt; the paper's judge used the authors' "
                         "llm_judge_rag_prompt.json: pass it with --judge-prompt FILE")
        if "judge" in config.components:
            notes.append("the judge's symptom text and chapter guideline come from icdreason's knowledge base; the "
                         "authors' came from their Meilisearch index and guideline file (not published)")
    return notes
