"""Reward settings: :class:`RewardConfig`, the reward components, and where each value came from.

A config starts from a **preset** (:mod:`icdreason.rewards.presets`; ``deepicd-r1`` by default): every field left
unset takes the preset's value. Settings then come, later ones winning, from a YAML file, ``ICDREASON_REWARD_<FIELD>``
environment variables (``ICDREASON_REWARD_PRESET`` picks the preset, e.g. in verl's workers), command-line flags and
verl's ``reward_kwargs``; unknown keys are an error. Every value remembers its origin (:meth:`RewardConfig.origins`),
which ``icdreason reward settings`` shows. Importing this module is cheap (PyYAML is imported only to read a file),
so ``icdreason.training`` can take the component list from here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from .presets import DEFAULT_PRESET, RULES, get_preset

__all__ = ["COMPONENTS", "DEFAULT_COMPONENTS", "UNSET", "RewardConfig", "parse_bool"]

#: Reward components, in the order tables show them. Each can be switched on or off in :class:`RewardConfig`.
COMPONENTS = ("format", "outcome", "length", "trace", "judge")
#: The default preset's components that need no server (its judge term needs ``judge_url``).
DEFAULT_COMPONENTS = ("format", "outcome", "trace")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(name: str, value: Any) -> bool:
    """A boolean setting from YAML, an environment variable or a flag: true/false, 1/0, yes/no, on/off (any case).

    Anything else is an error. (The authors' reward reads its flags with ``bool(os.getenv(...))``, so "False", "0"
    and "no" all turn a flag *on*; ``docs/rewards.md`` explains the difference.)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"reward setting {name} expects true or false (also 1/0, yes/no, on/off), got {value!r}")


class _Unset:
    """Marks a field left to the preset."""

    def __repr__(self) -> str:
        return "<preset>"


#: Default of every field but ``preset``: the value comes from the preset.
UNSET: Any = _Unset()


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _opt(text: str) -> Any:
    return field(default=UNSET, metadata=_help(text))


@dataclass
class RewardConfig:
    """Reward settings. Fields left unset take the preset's value; every field has help text."""

    preset: str = field(default=DEFAULT_PRESET, metadata=_help(
        "Named defaults: deepicd-r1 (the paper's GRPO jobs), icdreason (icdreason's own rule), authors-readme "
        "(the authors' README function). Other settings override it."))
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
        origins: dict[str, str] = {"preset": "default" if self.preset == DEFAULT_PRESET else "argument"}
        for f in dataclasses.fields(self):
            if f.name == "preset":
                continue
            if getattr(self, f.name) is UNSET:
                setattr(self, f.name, preset.value(f.name))
                origins[f.name] = f"preset {self.preset}"
            else:
                origins[f.name] = "argument"
        self._origins = origins
        if isinstance(self.components, str):
            self.components = tuple(c.strip() for c in self.components.split(",") if c.strip())
        self.components = tuple(self.components)
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown:
            raise UsageError(f"unknown reward component(s): {', '.join(unknown)} (choose from {', '.join(COMPONENTS)})")
        if self.rule not in RULES:
            raise UsageError(f"rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        if self.prefix_bonus not in ("released", "literal"):
            raise UsageError(f"prefix_bonus must be 'released' or 'literal', not {self.prefix_bonus!r}")
        if self.judge_guided not in ("structured_outputs", "guided_choice", "json_schema", "none"):
            raise UsageError("judge_guided must be one of structured_outputs, guided_choice, json_schema, none")
        self.judge_rag = parse_bool("judge_rag", self.judge_rag)
        if "judge" in self.components and not (self.judge_url and self.judge_model):
            if origins["components"].startswith("preset "):
                # The preset's judge term needs a server: off without one (departures() says so).
                self.components = tuple(c for c in self.components if c != "judge")
            else:
                raise UsageError("the judge component needs a judge server: pass --judge-url and --judge-model "
                                 "(settings judge_url, judge_model), or leave the judge out (--no-judge)")

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def origins(self) -> dict[str, str]:
        """Where each value came from: ``default``, ``preset NAME``, or the YAML file, variable, flag or verl
        ``reward_kwargs`` that set it (``argument`` for a value passed to the constructor)."""
        return dict(self._origins)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, *, base: RewardConfig | None = None,
                  origin: str = "settings") -> RewardConfig:
        """Settings from a mapping (YAML, verl ``reward_kwargs``, flags) over ``base``; unknown keys are an error.

        Values ``base`` took from its preset are taken afresh from the (possibly new) preset; values set explicitly
        in ``base`` are kept unless ``values`` sets them again. ``origin`` labels the new values.
        """
        return cls.from_sources({name: (value, origin) for name, value in (values or {}).items()}, base=base)

    @classmethod
    def from_sources(cls, settings: Mapping[str, tuple[Any, str]], *, base: RewardConfig | None = None) -> RewardConfig:
        """Like :meth:`from_dict`, with an origin per setting (``name -> (value, origin)``), applied together (so
        ``components`` with ``judge`` and ``judge_url`` may come from different variables)."""
        unknown = sorted(set(settings) - set(cls.field_names()))
        if unknown:
            raise UsageError(f"unknown reward setting(s): {', '.join(unknown)} "
                             f"(known: {', '.join(cls.field_names())})")
        explicit: dict[str, tuple[Any, str]] = {}
        if base is not None:
            for name, where in base._origins.items():
                if where != "default" and not where.startswith("preset "):
                    explicit[name] = (getattr(base, name), where)
        for name, (value, where) in settings.items():
            explicit[name] = (_coerce(name, value), where)
        config = cls(**{name: value for name, (value, _) in explicit.items()})
        config._origins.update({name: where for name, (_, where) in explicit.items()})
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, base: RewardConfig | None = None,
                  origin: str | None = None) -> RewardConfig:
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
        return cls.from_dict(data, base=base, origin=origin or f"YAML {p}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RewardConfig:
        """The preset, then ``ICDREASON_REWARD_CONFIG`` (a YAML file), then ``ICDREASON_REWARD_<FIELD>`` variables."""
        env = os.environ if environ is None else environ
        config = cls()
        if env.get("ICDREASON_REWARD_CONFIG"):
            path = env["ICDREASON_REWARD_CONFIG"]
            config = cls.from_yaml(path, base=config, origin=f"YAML {path} ($ICDREASON_REWARD_CONFIG)")
        variables = {name: f"ICDREASON_REWARD_{name.upper()}" for name in cls.field_names()}
        found = {name: (env[var], f"env {var}") for name, var in variables.items() if var in env}
        return cls.from_sources(found, base=config) if found else config

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
    if kind == "bool":
        return parse_bool(name, value)
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"reward setting {name} expects a number, got {value!r}") from None
    return str(value)
