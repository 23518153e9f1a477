"""The DeepICD-R1 authors' two reward rules, written from their semantics (``docs/rewards.md`` has the worked numbers).

Both read a response as think/diagnosis pairs (:func:`icdreason.parse.pair_spans`, the reading strict evaluation
uses too: ``<think>`` is put in front, pairs start at line starts).

**single-trace** (the ``deepicd-r1`` preset; the function of the paper's GRPO jobs):

- only the first pair counts; each further pair costs ``extra_block_penalty`` (format term), and an empty response
  (no characters at all) ``empty_penalty`` (format term);
- the code is the first pair's diagnosis, stripped, with every dot removed; it must pass the published pattern
  (case-sensitive), else the outcome is ``malformed_penalty``, as it is without any pair;
- a code equal to a gold code pays ``match_weight x len(first gold code)``; otherwise the gold codes sharing its first
  character compete (longest common prefix, then the shorter code) and the best pays ``match_weight`` x the partial
  units of :mod:`icdreason.rewards.outcome`; with no such gold code the outcome is ``no_overlap_penalty``;
- the trace term pays ``trace_reward`` when the first pair has a think block with any text, whitespace included;
- the judge is asked about the first pair only when its diagnosis, stripped *but with its dots*, passes the pattern
  and its stripped trace is not empty; otherwise the judge term is ``judge_skip_score x judge_scale``.

**multi-trace** (the ``authors-readme`` preset; the function of the authors' README command): every pair is a
prediction. A prediction equal to a gold code still unmatched pays ``match_weight`` once and uses that gold code up;
the others are matched greedily to the remaining gold codes with their first character (highest common prefix
first, then the shorter gold code) for partial units; every prediction left over, and every diagnosis that is not a
code, costs ``no_overlap_penalty``. The trace term pays ``trace_reward`` per pair with a think block; the length term
is ``length_malus x characters`` — or ``empty_penalty`` when that product is 0 (an empty response, or a zero
``length_malus``), on top of the format term's ``empty_penalty`` for an empty response. Without a pair the outcome is 0.
The authors' function resolved each diagnosis text to a code through a Meilisearch index; here the code is the text
as written (stripped, dots removed, stripped again, checked against the pattern) — see ``docs/rewards.md``.

The totals add the terms in the authors' order, ``((outcome + trace) + format) + length``, so the floating-point sum
is theirs to the last bit.
"""

from __future__ import annotations

from ..codes import CODE_PATTERN, common_prefix
from ..parse import pair_spans
from .config import COMPONENTS, RewardConfig
from .outcome import RewardBreakdown, best_same_letter, partial_units

__all__ = ["JudgeInput", "score_multi_trace", "score_single_trace"]

#: What the judge is asked about for one response: (trace, code as written), or None when it is not asked.
JudgeInput = tuple[str, str] | None


def _total(comps: dict[str, float]) -> float:
    return ((comps["outcome"] + comps["trace"]) + comps["format"]) + comps["length"]


def _judge_input(text: str, spans: list[tuple[int, int, int, int]]) -> JudgeInput:
    if not spans:
        return None
    a, b, c, d = spans[0]
    trace, code = text[a:b].strip(), text[c:d].strip()
    return (trace, code) if trace and CODE_PATTERN.match(code) else None


def score_single_trace(text: str, golds: list[str], c: RewardConfig,
                       on: frozenset[str]) -> tuple[RewardBreakdown, JudgeInput]:
    """The single-trace rule for one response (``golds``: undotted gold codes, at least one)."""
    pairs = pair_spans(text)
    comps = dict.fromkeys(COMPONENTS, 0.0)
    code: str | None = None
    if pairs:
        candidate = text[pairs[0][2]:pairs[0][3]].strip().replace(".", "")
        if CODE_PATTERN.match(candidate):
            code = candidate
    gold, o, exact = golds[0], 0, False
    if code is None:
        outcome = c.malformed_penalty
    elif code in golds:
        gold, o, exact = code, len(code), True
        outcome = c.match_weight * len(golds[0])
    else:
        best = best_same_letter(code, golds)
        if best is None:
            outcome = c.no_overlap_penalty
        else:
            gold, o = best
            outcome = c.match_weight * partial_units(o, len(gold), bonus_from=c.bonus_from,
                                                     prefix_bonus=c.prefix_bonus)
    if "outcome" in on:
        comps["outcome"] = outcome
    if "format" in on:
        comps["format"] = (c.extra_block_penalty * (len(pairs) - 1) if len(pairs) > 1 else 0.0) + (
            c.empty_penalty if not text else 0.0)
    if "length" in on:
        comps["length"] = c.length_malus * len(text) + 0.0
    if "trace" in on and pairs and pairs[0][1] > pairs[0][0]:  # any text, whitespace included
        comps["trace"] = c.trace_reward
    format_ok = len(pairs) == 1 and code is not None
    result = RewardBreakdown(_total(comps), comps, code, gold, o, exact, format_ok)
    return result, (_judge_input(text, pairs) if "judge" in on else None)


def _as_written(diagnosis: str) -> str | None:
    code = diagnosis.strip().replace(".", "").strip()
    return code if CODE_PATTERN.match(code) else None


def _greedy_partial(predictions: list[str], golds: list[str], c: RewardConfig) -> tuple[float, int]:
    """Partial units of the predictions left after exact matches, matched one-to-one to the gold codes left, per
    first character; returns (units, predictions left unmatched)."""
    units, unmatched = 0.0, 0
    by_letter: dict[str, list[str]] = {}
    for p in predictions:
        by_letter.setdefault(p[0], []).append(p)
    for letter, preds in by_letter.items():
        left = [g for g in dict.fromkeys(golds) if g[:1] == letter]
        if left:
            candidates = [(common_prefix(g, p), -len(g), p, g) for p in preds for g in left]
            candidates.sort(key=lambda m: (m[0], m[1]), reverse=True)  # stable: ties keep their order
            for o, _, p, g in candidates:
                if g in left and p in preds:
                    units += o / len(g)
                    if o >= c.bonus_from and c.prefix_bonus == "released":
                        units += o - 2
                    elif c.prefix_bonus == "literal":
                        units += abs(o - 2)
                    left.remove(g)
                    preds.remove(p)
                    if not left or not preds:
                        break
        unmatched += len(preds)
    return units, unmatched


def score_multi_trace(text: str, golds: list[str], c: RewardConfig,
                      on: frozenset[str]) -> tuple[RewardBreakdown, JudgeInput]:
    """The multi-trace rule for one response, with the code of each pair read as written."""
    pairs = pair_spans(text)
    comps = dict.fromkeys(COMPONENTS, 0.0)
    remaining = list(dict.fromkeys(golds))
    full, no_code, partial_preds = 0.0, 0, []
    for _, _, start, end in pairs:
        code = _as_written(text[start:end])
        if code is None:
            no_code += 1
        elif code in remaining:
            full += c.match_weight
            remaining.remove(code)
        else:
            partial_preds.append(code)
    units, unmatched = _greedy_partial(partial_preds, remaining, c)
    if "outcome" in on:
        comps["outcome"] = full + units * c.match_weight + (unmatched + no_code) * c.no_overlap_penalty
    if "format" in on and not text:
        comps["format"] = c.empty_penalty
    if "length" in on:
        length = len(text) * c.length_malus
        comps["length"] = length if length != 0 else c.empty_penalty
    if "trace" in on:
        comps["trace"] = sum(1 for a, b, _, _ in pairs if b > a) * c.trace_reward
    # code / gold / prefix / exact describe the first pair's prediction
    first = _as_written(text[pairs[0][2]:pairs[0][3]]) if pairs else None
    gold, o, exact = golds[0], 0, False
    if first is not None:
        exact = first in golds
        best = (first, len(first)) if exact else best_same_letter(first, golds)
        if best is not None:
            gold, o = best
    format_ok = bool(pairs) and no_code == 0
    return RewardBreakdown(_total(comps), comps, first, gold, o, exact, format_ok), \
        (_judge_input(text, pairs) if "judge" in on else None)
