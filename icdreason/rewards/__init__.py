"""GRPO rewards for DeepICD-R1-style models: format, hierarchical outcome, shaping terms and the LLM judge.

One implementation (:func:`score_batch`) sits behind every entry point:

- :func:`score_response` — one response, a :class:`RewardBreakdown` with the total and each component;
- :func:`compute_score` / :func:`compute_score_batch` — verl's custom reward signatures (``train/reward_fn.py``);
- :func:`reward_functions` — trl ``GRPOTrainer`` reward functions, one per component.

The package, one module per job:

- ``presets``: the named presets (``deepicd-r1`` — the paper's reward, the default —, ``icdreason``,
  ``authors-readme``), each value with its source;
- ``config``: :class:`RewardConfig` (every setting, with help and origin) and the components;
- ``scan``: :func:`split_response`, how icdreason's own rule reads a response;
- :func:`find_pairs` (from :mod:`icdreason.parse`, shared with strict evaluation): how the authors' rules read one
  (think/diagnosis pairs at line starts);
- ``outcome``: the hierarchical outcome reward and :class:`RewardBreakdown`;
- ``rules``: the authors' single-trace and multi-trace rules;
- ``scoring``: :func:`score_batch`, which applies the configured rule (its docstring has icdreason's formulas);
- ``judge``: the LLM-judge client (imported when the judge component is on: it needs httpx and SQLite);
- ``verl_adapter``, ``trl_adapter``: the two trainers' signatures;
- ``report``: ``icdreason reward score`` (a file of responses) and the reward settings of a training run.

Importing the package is cheap: the names below are loaded from their module on first use (PEP 562, as trl's
``_LazyModule`` does), so ``icdreason.training`` can read :mod:`icdreason.rewards.config` without loading the scoring
code, and nothing imports PyYAML, httpx or torch until a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import COMPONENTS, DEFAULT_COMPONENTS, RewardConfig
    from .outcome import RewardBreakdown, outcome_units
    from ..parse import find_pairs
    from .presets import PRESETS, get_preset
    from .scan import ResponseParts, split_response
    from .scoring import score_batch, score_response
    from .trl_adapter import completion_text, reward_functions
    from .verl_adapter import compute_score, compute_score_batch

#: Each public name and the module that defines it (relative to this package; ".parse" is icdreason.parse).
_SOURCES = {
    "COMPONENTS": "config",
    "DEFAULT_COMPONENTS": "config",
    "RewardConfig": "config",
    "PRESETS": "presets",
    "get_preset": "presets",
    "find_pairs": ".parse",  # icdreason.parse: the reading strict evaluation uses too
    "ResponseParts": "scan",
    "split_response": "scan",
    "RewardBreakdown": "outcome",
    "outcome_units": "outcome",
    "score_batch": "scoring",
    "score_response": "scoring",
    "completion_text": "trl_adapter",
    "reward_functions": "trl_adapter",
    "compute_score": "verl_adapter",
    "compute_score_batch": "verl_adapter",
}

__all__ = [
    "COMPONENTS",
    "DEFAULT_COMPONENTS",
    "PRESETS",
    "RewardBreakdown",
    "RewardConfig",
    "ResponseParts",
    "completion_text",
    "compute_score",
    "compute_score_batch",
    "find_pairs",
    "get_preset",
    "outcome_units",
    "reward_functions",
    "score_batch",
    "score_response",
    "split_response",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (then it is a plain module attribute)."""
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
