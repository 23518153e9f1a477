"""Reward settings: :class:`RewardConfig`, the reward components, and where each value came from.

A config starts from a **preset** (:mod:`icdreason.rewards.presets`; ``deepicd-r1`` by default): every field left
unset takes the preset's value. Settings then come, later ones winning, from a YAML file, ``ICDREASON_REWARD_<FIELD>``
environment variables (``ICDREASON_REWARD_PRESET`` picks the preset, e.g. in verl's workers), command-line flags and
verl's ``reward_kwargs``; unknown keys are an error. Reading, coercion, layering and the origin of every value
(:meth:`~icdreason.settings.Settings.origins`, which ``icdreason reward settings`` shows) come from the one settings
base, :class:`icdreason.settings.Settings`; a value a preset supplies is a derived default, taken afresh when a later
layer names another preset. Importing this module is cheap (PyYAML is imported only to read a file), so
``icdreason.training`` can take the component list from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..settings import Settings, option
from .presets import DEFAULT_PRESET, RULES, get_preset

__all__ = ["COMPONENTS", "DEFAULT_COMPONENTS", "UNSET", "RewardConfig"]

#: Reward components, in the order tables show them. Each can be switched on or off in :class:`RewardConfig`.
COMPONENTS = ("format", "outcome", "length", "trace", "judge")
#: The default preset's components that need no server (its judge term needs ``judge_url``).
DEFAULT_COMPONENTS = ("format", "outcome", "trace")


class _Unset:
    """Marks a field left to the preset."""

    def __repr__(self) -> str:
        return "<preset>"


#: Default of every field but ``preset``: the value comes from the preset.
UNSET: Any = _Unset()


def _opt(text: str) -> Any:
    return option(UNSET, text)


@dataclass
class RewardConfig(Settings):
    """Reward settings. Fields left unset take the preset's value; every field has help text.

    Booleans take true/false, 1/0, yes/no, on/off in any case; anything else is an error. (The authors' reward reads
    its flags with ``bool(os.getenv(...))``, so "False", "0" and "no" all turn a flag *on*; ``docs/rewards.md``
    explains the difference.)
    """

    env_prefix = "ICDREASON_REWARD_"
    yaml_section = "reward"

    preset: str = option(DEFAULT_PRESET, "Named defaults: deepicd-r1 (the paper's GRPO jobs), icdreason (icdreason's "
                         "own rule), authors-readme (the authors' README function). Other settings override it.")
    rule: str = _opt("How a response is read and scored: single-trace (the authors' job function), multi-trace "
                     "(the authors' README function), icdreason (icdreason's scanner and format check).")
    components: tuple[str, ...] = _opt("Components summed into the score (of format, outcome, length, trace, judge). "
                                       "The judge needs judge_url and judge_model.")
    format_reward: float = _opt("icdreason rule: paid when both of the paper's format checks pass.")
    match_weight: float = _opt("Weight of the hierarchical outcome reward (released: 15).")
    bonus_from: int = _opt("Prefix length from which the O-2 bonus is paid (category = 3).")
    prefix_bonus: str = _opt("'released': bonus O-2 only once O >= bonus_from (the authors' code); 'literal': |O-2| "
                             "as Equation 1 prints it (pays 2 for no overlap).")
    no_overlap_penalty: float = _opt("Outcome when not even the first character matches a gold code.")
    malformed_penalty: float = _opt("Outcome when the diagnosis is missing or fails the code pattern.")
    empty_penalty: float = _opt("Format term for an empty generation (icdreason rule: also whitespace-only).")
    extra_block_penalty: float = _opt("Format term per diagnosis block (pair) beyond the first.")
    length_malus: float = _opt("Length term per character of the response.")
    trace_reward: float = _opt("Paid for the reasoning trace (single-/multi-trace: a non-empty think block, even "
                               "blank; icdreason: one with non-whitespace text).")
    judge_scale: float = _opt("Multiplies the judge's 1-5 score.")
    judge_neutral: float = _opt("Judge score used when a judge call fails (counted warning).")
    judge_skip_score: float = _opt("Judge score (before judge_scale) of a response the judge is not asked about: "
                                   "no pair, a code failing the pattern as written, or a blank trace.")
    judge_url: str | None = _opt("OpenAI-compatible base URL, e.g. http://host:8000/v1.")
    judge_model: str | None = _opt("Model name served at judge_url.")
    judge_prompt: str | None = _opt("Judge prompt JSON {\"SYSTEM\": ..., \"USER\": ...} with $$ADMISSION_NOTE$$, "
                                    "$$TRACE$$, $$ICD$$, $$SYMPTOMS$$, $$ICD_CHAPTER$$ (the authors' files load as "
                                    "they are). Unset: icdreason's own bundled prompt.")
    judge_rag: bool = _opt("Give the judge the predicted code's symptom description and chapter guideline "
                           "(knowledge base).")
    judge_api_key_env: str = _opt("Environment variable holding the judge's API key (never printed).")
    judge_timeout: float = _opt("Seconds per judge request.")
    judge_concurrency: int = _opt("Judge requests in flight at once.")
    judge_guided: str = _opt("Constrained output: structured_outputs (vLLM >= 0.10.2), guided_choice (older vLLM), "
                             "json_schema (OpenAI response_format), none. A server that rejects it is asked again "
                             "without.")
    judge_cache: str | None = _opt("SQLite cache of judge scores (default: $ICDREASON_HOME/judge_cache.sqlite; "
                                   "'off' disables).")

    def __post_init__(self) -> None:
        preset = get_preset(self.preset)
        from_preset = [name for name in self.field_names() if getattr(self, name) is UNSET]
        for name in from_preset:
            self.derive(name, preset.value(name), f"preset {self.preset}")
        self.components = self.coerce_field("components", self.components)  # also "a,b" or a list
        self.judge_rag = self.coerce_field("judge_rag", self.judge_rag)
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown:
            raise UsageError(f"unknown reward component(s): {', '.join(unknown)} (choose from {', '.join(COMPONENTS)})")
        if self.rule not in RULES:
            raise UsageError(f"rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        if self.prefix_bonus not in ("released", "literal"):
            raise UsageError(f"prefix_bonus must be 'released' or 'literal', not {self.prefix_bonus!r}")
        if self.judge_guided not in ("structured_outputs", "guided_choice", "json_schema", "none"):
            raise UsageError("judge_guided must be one of structured_outputs, guided_choice, json_schema, none")
        if "judge" in self.components and not (self.judge_url and self.judge_model):
            if "components" in from_preset:
                # The preset's judge term needs a server: off without one (departures() says so).
                self.components = tuple(c for c in self.components if c != "judge")
            else:
                raise UsageError("the judge component needs a judge server: pass --judge-url and --judge-model "
                                 "(settings judge_url, judge_model), or leave the judge out (--no-judge)")

    # -- the messages, worded for reward settings ------------------------------------------------------------------
    @classmethod
    def unknown_keys_message(cls, unknown: list[str], source: str) -> str:
        return f"unknown reward setting(s): {', '.join(unknown)} (known: {', '.join(cls.field_names())})"

    @classmethod
    def bad_value_message(cls, name: str, value: Any, expected: Any) -> str:
        if value is None:
            return f"reward setting {name} needs a value"
        if expected is bool:
            return f"reward setting {name} expects true or false (also 1/0, yes/no, on/off), got {value!r}"
        if expected in (int, float):
            return f"reward setting {name} expects a number, got {value!r}"
        return super().bad_value_message(name, value, expected)

    @classmethod
    def file_error_message(cls, path: Path, problem: str, detail: str = "") -> str:
        if problem == "missing":
            return f"reward config not found: {path}"
        if problem == "not a mapping":
            return f"{path}: expected a mapping of reward settings"
        return super().file_error_message(path, problem, detail)
