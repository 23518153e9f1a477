"""Training launchers: SFT with trl, GRPO with verl (GPU clusters) or trl (one machine).

Configs are dataclasses (:class:`SftConfig`, :class:`GrpoConfig`) with the paper's and the 7B model card's defaults;
``plan_*`` checks a run and returns its launch command (what ``--dry-run`` prints), ``run_*`` executes it and returns
a :class:`TrainSummary`. Heavy libraries (torch, transformers, trl) are imported only when training starts, and the
launchers only when first used, so the CLI can import a config module (for its flags' help) cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .export import TrainSummary, read_summary
    from .grpo import plan_grpo, run_grpo
    from .grpo_config import GrpoConfig
    from .launch import LaunchPlan
    from .sft import plan_sft, run_sft
    from .sft_config import SftConfig

#: Public name -> the module of this package that defines it (imported on first use).
_EXPORTS = {
    "GrpoConfig": "grpo_config",
    "LaunchPlan": "launch",
    "SftConfig": "sft_config",
    "TrainSummary": "export",
    "plan_grpo": "grpo",
    "plan_sft": "sft",
    "read_summary": "export",
    "run_grpo": "grpo",
    "run_sft": "sft",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
