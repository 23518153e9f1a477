"""Reward settings: :class:`RewardConfig` and the reward components.

Defaults are the paper's and the authors' released values; every field carries help text (``icdreason reward
settings`` lists them). Settings come from defaults, a YAML file, ``ICDREASON_REWARD_<FIELD>`` environment variables
and verl's ``reward_kwargs``; unknown keys are an error. Importing this module is cheap (PyYAML is imported only to
read a file), so ``icdreason.training`` can take the component list from here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError

__all__ = ["COMPONENTS", "DEFAULT_COMPONENTS", "RewardConfig"]

#: Reward components, in the order tables show them. Each can be switched on or off in :class:`RewardConfig`.
COMPONENTS = ("format", "outcome", "length", "trace", "judge")
#: The components on by default (the judge needs a server, so it is off).
DEFAULT_COMPONENTS = ("format", "outcome", "length", "trace")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RewardConfig:
    """Reward settings. Defaults are the paper's / the authors' released values; every field has help text."""

    components: tuple[str, ...] = field(
        default=DEFAULT_COMPONENTS,
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
