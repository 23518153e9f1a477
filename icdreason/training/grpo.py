"""``icdreason train grpo``: one entry point over the two backends (verl on GPU nodes, trl on one machine)."""

from __future__ import annotations

from typing import Any

from .checks import cuda_device_count, schedule_notes
from .export import TrainSummary
from .grpo_config import GrpoConfig
from .launch import LaunchPlan

__all__ = ["plan_grpo", "run_grpo"]


def plan_grpo(cfg: GrpoConfig, *, dry_run: bool = False) -> tuple[LaunchPlan, dict[str, Any]]:
    """Resolve the machine-dependent defaults (backend, GPUs), check a run and build its launch; the dict holds what a
    dry run shows besides the config."""
    from dataclasses import asdict

    from ..rewards.report import reward_config_for_run

    cfg.resolve(devices=cuda_device_count)
    if cfg.backend == "verl":
        from .grpo_verl import describe_override_sources, plan_verl

        plan = plan_verl(cfg, dry_run=dry_run)
        extra = {"overrides_checked_against": describe_override_sources()}
    else:
        from .grpo_trl import plan_trl_grpo, trl_batches

        plan = plan_trl_grpo(cfg, dry_run=dry_run)
        per_device, accumulation = trl_batches(cfg)
        extra = {"trl": {"per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation,
                         "num_generations": cfg.rollout_n}}
    plan.notes.extend(schedule_notes(cfg, batch_field="train_batch_size", drops_last=cfg.backend == "verl"))
    reward = asdict(reward_config_for_run(**cfg.reward_options()))
    reward["components"] = list(reward["components"])
    return plan, {"reward": reward, **extra}


def run_grpo(cfg: GrpoConfig, *, progress=None) -> TrainSummary:
    """Run GRPO with the configured backend (resolved for this machine) and return the summary."""
    cfg.resolve(devices=cuda_device_count)
    if cfg.backend == "verl":
        from .grpo_verl import run_verl

        return run_verl(cfg, progress=progress)
    from .grpo_trl import run_trl_grpo

    return run_trl_grpo(cfg, progress=progress)
