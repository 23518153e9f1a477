"""The reward settings of a GRPO run: :class:`icdreason.rewards.RewardConfig` built from the run config.

Both backends score with the same code: trl calls :func:`icdreason.rewards.reward_functions` (one function per
component, each logged as ``rewards/<name>/mean``); verl loads ``train/reward_fn.py`` by path, whose
``compute_score`` reads the settings file written here (passed as ``reward_kwargs.config``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import IcdreasonError
from .checks import check_judge
from .grpo_config import GrpoConfig

__all__ = ["REWARD_FILE", "check_reward_setup", "reward_config_for", "write_reward_config"]

REWARD_FILE = "reward.yaml"  # the resolved reward settings, in the output folder


def reward_config_for(cfg: GrpoConfig):
    """The rewards' config: defaults, then ``reward_config`` (YAML), then the run's components and judge options."""
    from ..rewards import RewardConfig

    base = RewardConfig.from_yaml(cfg.reward_config) if cfg.reward_config else RewardConfig(components=())
    values: dict = {"components": list(cfg.rewards), "judge_api_key_env": cfg.judge_key_env}
    if cfg.judge_url:
        values["judge_url"] = cfg.judge_url
    if cfg.judge_model:
        values["judge_model"] = cfg.judge_model
    return RewardConfig.from_dict(values, base=base)


def check_reward_setup(cfg: GrpoConfig, *, dry_run: bool) -> tuple[object, list[str]]:
    """Build the reward config and probe the judge when it is used. Returns (config, notes for a dry run)."""
    notes: list[str] = []
    if "judge" in cfg.rewards and not (cfg.judge_url and cfg.judge_model):
        from ..errors import UsageError

        raise UsageError("the judge reward needs --judge-url and --judge-model (or train without it: --no-judge)")
    reward_cfg = reward_config_for(cfg)
    if "judge" in cfg.rewards:
        try:
            check_judge(cfg.judge_url, cfg.judge_model)
        except IcdreasonError as exc:
            if not dry_run:
                raise
            notes.append(f"judge check: {exc}")
    return reward_cfg, notes


def write_reward_config(reward_cfg, path: Path) -> Path:
    """Write the resolved reward settings as YAML (what verl's workers read through ``reward_kwargs.config``)."""
    import dataclasses

    import yaml

    data = dataclasses.asdict(reward_cfg)
    data["components"] = list(data["components"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path
