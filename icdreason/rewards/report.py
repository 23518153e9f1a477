"""Reward reports and the reward settings of a training run.

**Scoring a file** (``icdreason reward score``): check a reward setup before booking a GPU.

Rows come from JSONL, CSV, Parquet or a DuckDB prediction log (:func:`icdreason.records.read_predictions`). The
response is the first of ``response``, ``completion``, ``solution_str``, ``output``, ``text`` or ``raw`` (the first
raw sample of ``icdreason predict --keep-raw``); the gold code the first of ``gold``, ``gold_code``,
``ground_truth``, ``target``, ``label`` or ``reward_model.ground_truth`` (never ``code``: in a prediction
record that is the predicted code) — or, with a gold file, the code of the
row with the same ``id``.

**The reward settings of a GRPO run** (:func:`reward_config_for_run`, :func:`check_reward_setup`,
:func:`write_reward_config`): both trainers score with the same code. trl calls
:func:`icdreason.rewards.reward_functions` (one function per component, each logged as ``rewards/<name>/mean``);
verl loads ``train/reward_fn.py`` by path, whose ``compute_score`` reads the settings file written here (passed as
``reward_kwargs.config``). ``icdreason.training`` calls these with its run options; nothing here imports it.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IcdreasonError, InputError
from .config import COMPONENTS, RewardConfig
from .scoring import RewardBreakdown, score_batch

__all__ = [
    "GOLD_FIELDS",
    "RESPONSE_FIELDS",
    "REWARD_FILE",
    "ScoredFile",
    "check_reward_setup",
    "reward_config_for_run",
    "score_file",
    "summarize",
    "write_reward_config",
]

RESPONSE_FIELDS = ("response", "completion", "solution_str", "output", "text", "raw")
GOLD_FIELDS = ("gold", "gold_code", "ground_truth", "target", "label", "reward_model")


@dataclass
class ScoredFile:
    """The rows that were scored, their reward breakdowns (same order), and why other rows were left out."""

    rows: list[dict[str, Any]]
    results: list[RewardBreakdown]
    skipped: list[str]  # why rows were left out (no response / no gold)


def _pick(row: dict[str, Any], fields: Sequence[str]) -> Any:
    for f in fields:
        value = row.get(f)
        if value is None:
            continue
        if f == "raw" and isinstance(value, list):
            return value[0] if value else None
        if f == "reward_model" and isinstance(value, dict):
            return value.get("ground_truth")
        return value
    return None


def score_file(path: str | Path, *, config: RewardConfig | None = None, gold_file: str | Path | None = None,
               response_field: str | None = None, gold_field: str | None = None) -> ScoredFile:
    """Score every row of a file; rows without a response or a gold code are reported, not fatal."""
    from ..gold import gold_codes
    from ..records import read_predictions

    rows = read_predictions(path)
    golds_by_id = gold_codes(gold_file) if gold_file else None
    r_fields = (response_field,) if response_field else RESPONSE_FIELDS
    g_fields = (gold_field,) if gold_field else GOLD_FIELDS
    kept, responses, golds, notes, skipped = [], [], [], [], []
    for i, row in enumerate(rows):
        rid = str(row.get("id", i))
        response = _pick(row, r_fields)
        gold = golds_by_id.get(rid) if golds_by_id is not None else _pick(row, g_fields)
        if response is None:
            skipped.append(f"{rid}: no response field ({', '.join(r_fields)})")
            continue
        if not gold:
            skipped.append(f"{rid}: no gold code")
            continue
        info = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
        kept.append(row)
        responses.append(str(response))
        golds.append(gold)
        notes.append(row.get("note") or info.get("note"))
    if not kept:
        raise InputError(f"{path}: no row has both a response and a gold code ({skipped[0] if skipped else 'empty'}); "
                         "name the columns with --response-column/--gold-column or pass --gold FILE")
    return ScoredFile(kept, score_batch(responses, golds, config=config, notes=notes), skipped)


def summarize(results: Sequence[RewardBreakdown], components: Sequence[str] = COMPONENTS) -> list[dict[str, Any]]:
    """Per component (and the total): mean, min, max and the share of responses where it is not zero."""
    table = []
    for name in [*components, "score"]:
        values = [r.score if name == "score" else r.components.get(name, 0.0) for r in results]
        table.append({"component": name, "mean": statistics.fmean(values), "min": min(values), "max": max(values),
                      "nonzero": sum(1 for v in values if v != 0) / len(values)})
    return table


# ---------------------------------------------------------------------------------------------------------------
# The reward settings of a training run

REWARD_FILE = "reward.yaml"  # the resolved reward settings, in a run's output folder


def reward_config_for_run(components: Sequence[str] | None = None, *, preset: str | None = None,
                          reward_config: str | os.PathLike[str] | None = None, judge_url: str | None = None,
                          judge_model: str | None = None, judge_api_key_env: str = "ICDREASON_JUDGE_API_KEY",
                          judge_prompt: str | os.PathLike[str] | None = None,
                          origin: str = "train grpo") -> RewardConfig:
    """A run's reward config: the preset (default ``deepicd-r1``), then the ``reward_config`` YAML, then the run's
    preset, components (None: the preset's) and judge options, labelled ``origin``."""
    base = RewardConfig.load(reward_config, origin=f"YAML {reward_config} (reward_config)") if reward_config \
        else RewardConfig()
    values: dict[str, Any] = {}
    if preset:
        values["preset"] = preset
    if components is not None:
        values["components"] = list(components)
    if judge_url:
        values["judge_url"] = judge_url
    if judge_model:
        values["judge_model"] = judge_model
    if judge_prompt:
        values["judge_prompt"] = str(judge_prompt)
    if judge_api_key_env != "ICDREASON_JUDGE_API_KEY":
        values["judge_api_key_env"] = judge_api_key_env
    return RewardConfig.from_dict(values, base=base, origin=origin)


def check_reward_setup(components: Sequence[str] | None = None, *, dry_run: bool, preset: str | None = None,
                       reward_config: str | os.PathLike[str] | None = None, judge_url: str | None = None,
                       judge_model: str | None = None, judge_api_key_env: str = "ICDREASON_JUDGE_API_KEY",
                       judge_prompt: str | os.PathLike[str] | None = None) -> tuple[RewardConfig, list[str]]:
    """Build a run's reward config and probe the judge when it is used. Returns (config, notes for a dry run).

    The notes say where the reward departs from its preset's original (e.g. the paper's judge term left off). In a
    dry run an unreachable judge is a note; otherwise it stops the run before any training work.
    """
    from .judge import check_judge
    from .judge_prompt import load_judge_prompt
    from .presets import departures

    reward_cfg = reward_config_for_run(components, preset=preset, reward_config=reward_config, judge_url=judge_url,
                                       judge_model=judge_model, judge_api_key_env=judge_api_key_env,
                                       judge_prompt=judge_prompt)
    notes = [f"reward preset {reward_cfg.preset}: {note}" for note in departures(reward_cfg)]
    if reward_cfg.judge_prompt:
        load_judge_prompt(reward_cfg.judge_prompt)  # a broken prompt file stops the run now, not at the first step
    if "judge" in reward_cfg.components:
        try:
            check_judge(reward_cfg.judge_url, reward_cfg.judge_model)
        except IcdreasonError as exc:
            if not dry_run:
                raise
            notes.append(f"judge check: {exc}")
    return reward_cfg, notes


def write_reward_config(reward_cfg: RewardConfig, path: Path) -> Path:
    """Write the resolved reward settings as YAML, atomically (what verl's workers read through
    ``reward_kwargs.config``)."""
    return reward_cfg.save(path)
