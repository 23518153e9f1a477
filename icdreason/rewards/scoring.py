"""Scoring: format, hierarchical outcome, shaping terms and the LLM judge, summed into one reward per response.

One implementation (:func:`score_batch`) sits behind every entry point:

- :func:`score_response` — one response, a :class:`RewardBreakdown` with the total and each component;
- :func:`~icdreason.rewards.verl_adapter.compute_score` / ``compute_score_batch`` — verl's custom reward signatures
  (``train/reward_fn.py``);
- :func:`~icdreason.rewards.trl_adapter.reward_functions` — trl ``GRPOTrainer`` reward functions, one per component.

The rule (``RewardConfig.rule``, set by the preset) decides how a response is read and scored: ``single-trace``
and ``multi-trace`` are the DeepICD-R1 authors' functions (:mod:`icdreason.rewards.rules`; ``single-trace`` is the
default ``deepicd-r1`` preset's); ``icdreason`` is icdreason's own rule, defined below.

Definitions of the ``icdreason`` rule (``docs/rewards.md`` has the worked examples):

- The response may start inside the reasoning block (the rollout was prefilled with ``<think>``): when it does not
  begin with ``<think>``, the tag is put in front before checking, as the authors' released code does.
- **format**: ``format_reward`` when the paper's two checks pass — exactly one ``<think>…</think>`` block followed by
  exactly one ``<diagnosis>…</diagnosis>`` block (only whitespace between and after), and the diagnosis text with its
  dot removed matching ``^[A-Z][0-9]{2}[A-Z0-9]{0,4}$`` (case-sensitive, as published). Also carries two shaping
  terms: ``extra_block_penalty`` per complete diagnosis block beyond the first, and ``empty_penalty`` for an empty
  (or whitespace-only) generation.
- **outcome**: the diagnosis that counts is the first ``<diagnosis>`` block after the closing ``</think>`` (a
  diagnosis without a closed reasoning block counts as missing, so skipping the reasoning cannot collect it). Missing
  or malformed: ``malformed_penalty``. Otherwise, with ``O`` the longest common prefix (in characters) of the undotted
  prediction and the undotted gold code, and ``|g|`` the number of characters of the undotted gold code::

      exact match:   match_weight * |g|
      otherwise:     match_weight * (O/|g| + (O - 2 if O >= 3 else 0))  (+ no_overlap_penalty when O = 0)

  Equation 1 of the paper prints ``|O - 2|``, which would pay 2 for no overlap and 1 for one correct character; the
  text ("bonuses for reaching three and more correct digits") and the released code pay ``O - 2`` only from three
  characters on, and that reading is the default (``prefix_bonus="released"``; ``"literal"`` reproduces Eq. 1). An
  exact match pays ``|g|`` units (the released ``score * len(ground_truth)``), one unit more than a longer
  prediction that merely starts with the gold code, so the exact code is the unique maximum.
- **length**: ``length_malus`` per character of the raw response.
- **trace**: ``trace_reward`` when the reasoning block has non-whitespace text.
- **judge** (every rule): ``judge_scale`` times the judge's 1–5 score for the trace (see
  :mod:`icdreason.rewards.judge`); ``judge_skip_score`` (times the scale) when the response is not judged (icdreason
  rule: no valid code or no trace; the authors' rules: see :mod:`~icdreason.rewards.rules`); ``judge_neutral`` when
  the call failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from .config import COMPONENTS, RewardConfig
from .outcome import RewardBreakdown, gold_codes, outcome_units
from .rules import JudgeInput, score_multi_trace, score_single_trace
from .scan import ResponseParts, split_response

__all__ = ["RewardBreakdown", "outcome_units", "score_batch", "score_response"]


def _score_parts(response: str, parts: ResponseParts, golds: list[str], c: RewardConfig, on: frozenset[str]) -> RewardBreakdown:
    comps = dict.fromkeys(COMPONENTS, 0.0)
    code = parts.code
    best = (0.0, 0, False, golds[0])
    if code is not None:
        best = None
        for g in golds:
            units, o, exact = outcome_units(code, g, bonus_from=c.bonus_from, prefix_bonus=c.prefix_bonus)
            if best is None or units > best[0]:
                best = (units, o, exact, g)
    units, o, exact, gold = best
    if "format" in on:
        value = c.format_reward if parts.format_ok else 0.0
        if parts.diagnosis_blocks > 1:
            value += c.extra_block_penalty * (parts.diagnosis_blocks - 1)
        if parts.empty:
            value += c.empty_penalty
        comps["format"] = value
    if "outcome" in on:
        if code is None:
            comps["outcome"] = c.malformed_penalty
        else:
            comps["outcome"] = c.match_weight * units + (c.no_overlap_penalty if o == 0 else 0.0)
    if "length" in on:
        comps["length"] = c.length_malus * len(response) + 0.0  # no -0.0 for an empty response
    if "trace" in on and parts.has_trace:
        comps["trace"] = c.trace_reward
    return RewardBreakdown(sum(comps.values()), comps, code, gold, o, exact, parts.format_ok)


def _score_icdreason(text: str, golds: list[str], c: RewardConfig,
                     on: frozenset[str]) -> tuple[RewardBreakdown, JudgeInput]:
    parts = split_response(text)
    result = _score_parts(text, parts, golds, c, on)
    if "judge" not in on or result.code is None or not parts.has_trace:
        return result, None
    return result, (parts.trace.strip(), result.code)


_RULES = {"icdreason": _score_icdreason, "single-trace": score_single_trace, "multi-trace": score_multi_trace}


def score_batch(
    responses: Sequence[str],
    golds: Sequence[Any],
    *,
    config: RewardConfig | None = None,
    notes: Sequence[str | None] | None = None,
    judge: Any = None,
) -> list[RewardBreakdown]:
    """Score responses against gold codes (the one implementation behind every adapter).

    ``judge`` is a :class:`icdreason.rewards.judge.JudgeClient` (built from the config when the judge component is on
    and none is given). A judge failure never raises: the item gets ``judge_neutral`` and the client counts a warning.
    """
    c = config or RewardConfig()
    if len(responses) != len(golds):
        raise UsageError(f"{len(responses)} responses but {len(golds)} gold codes")
    on = frozenset(c.components)
    rule = _RULES[c.rule]
    cache: dict[Any, list[str]] = {}
    out: list[RewardBreakdown] = []
    judge_inputs: list[JudgeInput] = []
    for response, gold in zip(responses, golds):
        key = gold if isinstance(gold, str) else None
        g = cache.get(key) if key is not None else None
        if g is None:
            g = gold_codes(gold)
            if key is not None:
                cache[key] = g
        text = response if isinstance(response, str) else ("" if response is None else str(response))
        result, judge_input = rule(text, g, c, on)
        out.append(result)
        judge_inputs.append(judge_input)
    if "judge" in on:
        _add_judge(out, judge_inputs, notes, c, judge)
    return out


def _add_judge(results: list[RewardBreakdown], inputs: list[JudgeInput], notes: Sequence[str | None] | None,
               c: RewardConfig, judge: Any) -> None:
    from .judge import JudgeItem, judge_for_config

    todo: list[int] = []
    items: list[JudgeItem] = []
    for i, judge_input in enumerate(inputs):
        if judge_input is None:
            _add(results[i], c.judge_scale * c.judge_skip_score)
            continue
        note = (notes[i] if notes is not None else None) or ""
        todo.append(i)
        items.append(JudgeItem(note=note, trace=judge_input[0], code=judge_input[1]))
    if not items:
        return
    judge = judge or judge_for_config(c)
    scores = judge.score_many(items)
    for i, s in zip(todo, scores):
        results[i].judge_score = s
        _add(results[i], c.judge_scale * (s if s is not None else c.judge_neutral))


def _add(result: RewardBreakdown, value: float) -> None:
    result.components["judge"] = value + 0.0  # no -0.0
    result.score += value


def score_response(response: str, gold: Any, *, config: RewardConfig | None = None, note: str | None = None,
                   judge: Any = None) -> RewardBreakdown:
    """Score one response against its gold code (dotted or undotted)."""
    return score_batch([response], [gold], config=config, notes=[note], judge=judge)[0]
