"""Training launchers: SFT with trl, GRPO with verl (GPU clusters) or trl (one machine).

Configs are dataclasses (:class:`SftConfig`, :class:`GrpoConfig`) with the paper's and the 7B model card's defaults;
``plan_*`` checks a run and returns its launch command (what ``--dry-run`` prints), ``run_*`` executes it and returns
a :class:`TrainSummary`. Heavy libraries (torch, transformers, trl) are imported only when training starts.
"""

from __future__ import annotations

from .export import TrainSummary, read_summary
from .grpo import plan_grpo, run_grpo
from .grpo_config import GrpoConfig
from .launch import LaunchPlan
from .sft import plan_sft, run_sft
from .sft_config import SftConfig

__all__ = [
    "GrpoConfig",
    "LaunchPlan",
    "SftConfig",
    "TrainSummary",
    "plan_grpo",
    "plan_sft",
    "read_summary",
    "run_grpo",
    "run_sft",
]
