"""GRPO rewards for DeepICD-R1-style models: format, hierarchical outcome, shaping terms and the LLM judge.

One implementation (:func:`score_batch`) sits behind every entry point:

- :func:`score_response` — one response, a :class:`RewardBreakdown` with the total and each component;
- :func:`compute_score` / :func:`compute_score_batch` — verl's custom reward signatures (``train/reward_fn.py``);
- :func:`reward_functions` — trl ``GRPOTrainer`` reward functions, one per component.

Definitions (``docs/rewards.md`` has the worked examples):

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
- **judge**: ``judge_scale`` times the judge's 1–5 score for the trace (see :mod:`icdreason.judge`); 0 when the
  response has no valid code or no trace to judge; ``judge_neutral`` when the call failed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codes import CODE_PATTERN
from .errors import InputError, UsageError

__all__ = [
    "COMPONENTS",
    "RewardBreakdown",
    "RewardConfig",
    "ResponseParts",
    "completion_text",
    "compute_score",
    "compute_score_batch",
    "outcome_units",
    "reward_functions",
    "score_batch",
    "score_response",
    "split_response",
]

#: Reward components, in the order tables show them. Each can be switched on or off in :class:`RewardConfig`.
COMPONENTS = ("format", "outcome", "length", "trace", "judge")

_OPEN_T, _CLOSE_T, _OPEN_D, _CLOSE_D = "<think>", "</think>", "<diagnosis>", "</diagnosis>"
_LEN_CLOSE_T, _LEN_OPEN_D, _LEN_CLOSE_D = len(_CLOSE_T), len(_OPEN_D), len(_CLOSE_D)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RewardConfig:
    """Reward settings. Defaults are the paper's / the authors' released values; every field has help text."""

    components: tuple[str, ...] = field(
        default=("format", "outcome", "length", "trace"),
        metadata=_help("Components summed into the score (of format, outcome, length, trace, judge). The judge needs "
                       "judge_url and judge_model."))
    format_reward: float = field(default=1.0, metadata=_help("Paid when both of the paper's format checks pass."))
    match_weight: float = field(default=15.0, metadata=_help("Weight of the hierarchical outcome reward (released: 15)."))
    bonus_from: int = field(default=3, metadata=_help("Prefix length from which the O-2 bonus is paid (category = 3)."))
    prefix_bonus: str = field(
        default="released",
        metadata=_help("'released': bonus O-2 only once O >= bonus_from (the authors' code); 'literal': |O-2| as "
                       "Equation 1 prints it (pays 2 for no overlap)."))
    no_overlap_penalty: float = field(default=-0.2, metadata=_help("Added when not even the first character matches."))
    malformed_penalty: float = field(default=-1.0, metadata=_help("Outcome when the diagnosis is missing or malformed."))
    empty_penalty: float = field(default=-5.0, metadata=_help("Format term for an empty generation."))
    extra_block_penalty: float = field(default=-1.0, metadata=_help("Format term per diagnosis block beyond the first."))
    length_malus: float = field(default=-1e-4, metadata=_help("Length term per character of the response."))
    trace_reward: float = field(default=0.1, metadata=_help("Paid when the reasoning block is not empty."))
    judge_scale: float = field(default=0.05, metadata=_help("Multiplies the judge's 1-5 score."))
    judge_neutral: float = field(default=3.0, metadata=_help("Score used when a judge call fails (counted warning)."))
    judge_url: str | None = field(default=None, metadata=_help("OpenAI-compatible base URL, e.g. http://host:8000/v1."))
    judge_model: str | None = field(default=None, metadata=_help("Model name served at judge_url."))
    judge_api_key_env: str = field(default="ICDREASON_JUDGE_API_KEY",
                                   metadata=_help("Environment variable holding the judge's API key (never printed)."))
    judge_timeout: float = field(default=60.0, metadata=_help("Seconds per judge request."))
    judge_concurrency: int = field(default=16, metadata=_help("Judge requests in flight at once."))
    judge_guided: str = field(
        default="structured_outputs",
        metadata=_help("Constrained output: structured_outputs (vLLM >= 0.10.2), guided_choice (older vLLM), "
                       "json_schema (OpenAI response_format), none. A server that rejects it is asked again without."))
    judge_cache: str | None = field(default=None, metadata=_help(
        "SQLite cache of judge scores (default: $ICDREASON_HOME/judge_cache.sqlite; 'off' disables)."))

    def __post_init__(self) -> None:
        if isinstance(self.components, str):
            self.components = tuple(c.strip() for c in self.components.split(",") if c.strip())
        self.components = tuple(self.components)
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown:
            raise UsageError(f"unknown reward component(s): {', '.join(unknown)} (choose from {', '.join(COMPONENTS)})")
        if self.prefix_bonus not in ("released", "literal"):
            raise UsageError(f"prefix_bonus must be 'released' or 'literal', not {self.prefix_bonus!r}")
        if self.judge_guided not in ("structured_outputs", "guided_choice", "json_schema", "none"):
            raise UsageError("judge_guided must be one of structured_outputs, guided_choice, json_schema, none")
        if "judge" in self.components and not (self.judge_url and self.judge_model):
            raise UsageError("the judge component needs judge_url and judge_model (--judge-url/--judge-model or "
                             "ICDREASON_REWARD_JUDGE_URL/ICDREASON_REWARD_JUDGE_MODEL)")

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, *, base: RewardConfig | None = None) -> RewardConfig:
        """Build a config from a mapping (YAML, verl ``reward_kwargs``), rejecting unknown keys."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise UsageError(f"unknown reward setting(s): {', '.join(unknown)} "
                             f"(known: {', '.join(cls.field_names())})")
        merged = dataclasses.asdict(base) if base is not None else {}
        for name, value in values.items():
            merged[name] = _coerce(name, value)
        return cls(**merged)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, base: RewardConfig | None = None) -> RewardConfig:
        """Read a YAML file of settings (a top-level ``reward:`` section is also accepted)."""
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InputError(f"reward config not found: {p}")
        data = yaml.safe_load(p.read_text()) or {}
        if isinstance(data, dict) and isinstance(data.get("reward"), dict):
            data = data["reward"]
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a mapping of reward settings")
        return cls.from_dict(data, base=base)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RewardConfig:
        """Defaults, then ``ICDREASON_REWARD_CONFIG`` (a YAML file), then ``ICDREASON_REWARD_<FIELD>`` variables."""
        env = os.environ if environ is None else environ
        config = cls()
        if env.get("ICDREASON_REWARD_CONFIG"):
            config = cls.from_yaml(env["ICDREASON_REWARD_CONFIG"], base=config)
        overrides = {n: env[f"ICDREASON_REWARD_{n.upper()}"] for n in cls.field_names()
                     if f"ICDREASON_REWARD_{n.upper()}" in env}
        return cls.from_dict(overrides, base=config) if overrides else config

    def help_table(self) -> list[tuple[str, Any, str]]:
        """(name, value, help) for every field, for ``--help``-style listings."""
        return [(f.name, getattr(self, f.name), f.metadata.get("help", "")) for f in dataclasses.fields(self)]


_TYPES = {f.name: f.type for f in dataclasses.fields(RewardConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Turn strings from environment variables / CLI flags into the field's type."""
    kind = _TYPES[name]
    if name == "components":
        if isinstance(value, str):
            return tuple(c.strip() for c in value.split(",") if c.strip())
        return tuple(str(c) for c in value)
    if "None" in kind and (value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))):
        return None
    if value is None:
        raise UsageError(f"reward setting {name} needs a value")
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"reward setting {name} expects a number, got {value!r}") from None
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Parsing the response


@dataclass(slots=True)
class ResponseParts:
    """What the reward reads from one response (the trace is kept as a span: no copy unless asked for)."""

    text: str
    trace_span: tuple[int, int] | None  # where the reasoning text is (None: no closed reasoning block)
    diagnosis: str | None  # raw text of the diagnosis block that counts
    code: str | None  # undotted code when the diagnosis matches the paper's pattern, else None
    diagnosis_blocks: int  # complete <diagnosis>…</diagnosis> blocks in the response
    format_ok: bool  # the paper's two checks
    empty: bool

    @property
    def trace(self) -> str | None:
        """The reasoning text, or None without a closed reasoning block."""
        return None if self.trace_span is None else self.text[self.trace_span[0]:self.trace_span[1]]

    @property
    def has_trace(self) -> bool:
        """True when the reasoning block holds non-whitespace text."""
        return self.trace_span is not None and _NON_SPACE.search(self.text, *self.trace_span) is not None


_NON_SPACE = re.compile(r"\S")


def split_response(response: str) -> ResponseParts:
    """Find the reasoning trace and the diagnosis in a response, with or without the opening ``<think>``.

    One left-to-right scan over the ``<`` characters (``str.find`` is memchr-fast; tags are rare), so a step of
    512 responses of ~500 words takes a few milliseconds.
    """
    if not response or response.isspace():
        return ResponseParts(response or "", None, None, None, 0, False, True)
    prefilled = not response.lstrip().startswith(_OPEN_T)
    # counts: <think>, </think>, <diagnosis>, </diagnosis>; the prefill counts as one opening <think> at -1.
    n_ot, n_ct, n_od, n_cd = (1 if prefilled else 0), 0, 0, 0
    first_ot = -1 if prefilled else None
    close_t = open_d = close_d = -1
    i = response.find("<")
    while i >= 0:
        if response.startswith(_OPEN_T, i):
            n_ot += 1
            if first_ot is None:
                first_ot = i
        elif response.startswith(_CLOSE_T, i):
            n_ct += 1
            if close_t < 0:
                close_t = i
        elif response.startswith(_OPEN_D, i):
            n_od += 1
            if open_d < 0 and close_t >= 0:
                open_d = i
        elif response.startswith(_CLOSE_D, i):
            n_cd += 1
            if close_d < 0 and open_d >= 0:
                close_d = i
        i = response.find("<", i + 1)
    blocks = min(n_od, n_cd)
    if close_t < 0:
        return ResponseParts(response, None, None, None, blocks, False, False)
    span = (first_ot + len(_OPEN_T) if first_ot >= 0 else 0, close_t)
    if close_d < 0:
        return ResponseParts(response, span, None, None, blocks, False, False)
    diagnosis = response[open_d + _LEN_OPEN_D:close_d]
    candidate = diagnosis.strip().replace(".", "")
    code = candidate if CODE_PATTERN.match(candidate) else None
    format_ok = (
        code is not None
        and n_ot == 1 and n_ct == 1 and n_od == 1 and n_cd == 1
        and (open_d == close_t + _LEN_CLOSE_T or response[close_t + _LEN_CLOSE_T:open_d].isspace())
        and (close_d + _LEN_CLOSE_D == len(response) or response[close_d + _LEN_CLOSE_D:].isspace())
    )
    return ResponseParts(response, span, diagnosis, code, blocks, format_ok, False)


# ---------------------------------------------------------------------------------------------------------------
# Scoring


@dataclass(slots=True)
class RewardBreakdown:
    """The reward of one response: the total, each component, and what it was computed from."""

    score: float
    components: dict[str, float]
    code: str | None = None  # the undotted predicted code that was scored
    gold: str | None = None  # the undotted gold code it was compared with
    prefix: int = 0  # O: longest common prefix in characters
    exact: bool = False
    format_ok: bool = False
    judge_score: float | None = None  # the judge's raw 1-5 score (None: not judged or failed)

    def as_dict(self) -> dict[str, float]:
        """Flat numeric dict (what verl logs): score, every component, prefix, exact, format_ok."""
        out = {"score": self.score}
        out.update(self.components)
        out["prefix"] = float(self.prefix)
        out["exact"] = float(self.exact)
        out["format_ok"] = float(self.format_ok)
        return out


def outcome_units(pred: str, gold: str, *, bonus_from: int = 3, prefix_bonus: str = "released") -> tuple[float, int, bool]:
    """Hierarchical outcome in units of ``match_weight`` for two undotted codes: ``(units, O, exact)``."""
    if pred == gold:
        return float(len(gold)), len(gold), True
    o = 0
    for a, b in zip(pred, gold):
        if a != b:
            break
        o += 1
    if prefix_bonus == "literal":
        return o / len(gold) + abs(o - 2), o, False
    return o / len(gold) + (o - 2 if o >= bonus_from else 0), o, False


def _golds(gold: Any) -> list[str]:
    """Gold codes as undotted strings; accepts a code, or a list/array of codes (the best match counts)."""
    if gold is None:
        raise InputError("no gold code for a response: the data needs reward_model.ground_truth (or a 'code' column)")
    if isinstance(gold, str):
        items: Iterable[Any] = (gold,)
    elif isinstance(gold, Mapping):
        return _golds(gold.get("ground_truth"))
    else:
        items = list(gold)
    out = []
    for g in items:
        code = str(g).strip().upper().replace(".", "")
        if code:
            out.append(code)
    if not out:
        raise InputError(f"empty gold code {gold!r}")
    return out


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


def score_batch(
    responses: Sequence[str],
    golds: Sequence[Any],
    *,
    config: RewardConfig | None = None,
    notes: Sequence[str | None] | None = None,
    judge: Any = None,
) -> list[RewardBreakdown]:
    """Score responses against gold codes (the one implementation behind every adapter).

    ``judge`` is a :class:`icdreason.judge.JudgeClient` (built from the config when the judge component is on and
    none is given). A judge failure never raises: the item gets ``judge_neutral`` and the client counts a warning.
    """
    c = config or RewardConfig()
    if len(responses) != len(golds):
        raise UsageError(f"{len(responses)} responses but {len(golds)} gold codes")
    on = frozenset(c.components)
    cache: dict[Any, list[str]] = {}
    out = []
    for response, gold in zip(responses, golds):
        key = gold if isinstance(gold, str) else None
        g = cache.get(key) if key is not None else None
        if g is None:
            g = _golds(gold)
            if key is not None:
                cache[key] = g
        text = response if isinstance(response, str) else ("" if response is None else str(response))
        out.append(_score_parts(text, split_response(text), g, c, on))
    if "judge" in on:
        _add_judge(out, responses, notes, c, judge)
    return out


def _add_judge(results: list[RewardBreakdown], responses: Sequence[str], notes: Sequence[str | None] | None,
               c: RewardConfig, judge: Any) -> None:
    from .judge import JudgeItem, judge_for_config

    judge = judge or judge_for_config(c)
    todo: list[int] = []
    items: list[JudgeItem] = []
    for i, r in enumerate(results):
        if r.code is None:
            continue
        parts = split_response(responses[i] or "")
        if not parts.has_trace:
            continue
        note = (notes[i] if notes is not None else None) or ""
        todo.append(i)
        items.append(JudgeItem(note=note, trace=parts.trace.strip(), code=r.code))
    if not items:
        return
    scores = judge.score_many(items)
    for i, s in zip(todo, scores):
        r = results[i]
        r.judge_score = s
        value = c.judge_scale * (s if s is not None else c.judge_neutral)
        r.components["judge"] = value
        r.score += value


def score_response(response: str, gold: Any, *, config: RewardConfig | None = None, note: str | None = None,
                   judge: Any = None) -> RewardBreakdown:
    """Score one response against its gold code (dotted or undotted)."""
    return score_batch([response], [gold], config=config, notes=[note], judge=judge)[0]


# The verl and trl entry points live in reward_adapters.py; they are re-exported here so that every entry point is
# importable from icdreason.rewards (train/reward_fn.py, trl's GRPOTrainer).
from .reward_adapters import (  # noqa: E402
    completion_text,
    compute_score,
    compute_score_batch,
    reward_functions,
)
