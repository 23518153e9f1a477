"""verl entry points of the rewards: thin adapters over :func:`icdreason.rewards.scoring.score_batch`.

:func:`compute_score` and :func:`compute_score_batch` are verl's custom reward signatures (``train/reward_fn.py``
re-exports them for verl, which loads that file by path). Settings start from the preset (``deepicd-r1`` unless
``ICDREASON_REWARD_PRESET`` or a ``preset`` kwarg names another) and come from ``ICDREASON_REWARD_*`` variables, a
YAML file (``reward_kwargs.config``) and verl's other ``reward_kwargs``; the resolved config is cached per process,
keyed by those three, because verl calls the reward once per response or per step.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .config import RewardConfig
from .scoring import score_batch

__all__ = ["compute_score", "compute_score_batch", "extra_info_note"]

#: Keyword arguments verl's reward managers add on their own; they are not reward settings.
_VERL_EXTRAS = frozenset({"reward_router_address", "reward_model_tokenizer", "return_dict", "num_examine"})
_ENV_PREFIX = RewardConfig.env_prefix  # ICDREASON_REWARD_
_config_cache: dict[tuple, RewardConfig] = {}
_config_lock = threading.Lock()


def _env_snapshot() -> tuple:
    """The ICDREASON_REWARD_* variables (part of the config cache key: this runs once per verl reward call)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIX)))


def _config_from_kwargs(kwargs: Mapping[str, Any]) -> RewardConfig:
    """The config for a verl call: environment (``ICDREASON_REWARD_*``) overridden by ``reward_kwargs``."""
    settings = {k: v for k, v in kwargs.items() if k not in _VERL_EXTRAS}
    config_file = settings.pop("config", None)
    key = (config_file, repr(sorted((k, repr(v)) for k, v in settings.items())) if settings else "", _env_snapshot())
    cfg = _config_cache.get(key)
    if cfg is None:
        with _config_lock:
            base = RewardConfig.from_env()
            if config_file:
                base = RewardConfig.load(config_file, base=base,
                                         origin=f"YAML {config_file} (verl reward_kwargs.config)")
            plain = {k: (list(v) if not isinstance(v, (str, int, float, bool, type(None))) else v)
                     for k, v in settings.items()}
            cfg = RewardConfig.from_dict(plain, base=base, origin="verl reward_kwargs") if plain else base
            _config_cache[key] = cfg
    return cfg


def extra_info_note(extra_info: Any) -> str | None:
    """The note of a row in verl's layout (``extra_info["note"]``, written by ``icdreason data prepare``), or None."""
    if isinstance(extra_info, Mapping):
        note = extra_info.get("note")
        return note if isinstance(note, str) else None
    return None


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None,
                  **kwargs: Any) -> dict[str, float]:
    """verl's per-response reward (``custom_reward_function.name: compute_score``): a dict with ``score``,
    every component (disabled ones are 0), ``prefix``, ``exact`` and ``format_ok``. Extra keyword arguments are
    reward settings (verl's ``custom_reward_function.reward_kwargs``)."""
    cfg = _config_from_kwargs(kwargs)
    return score_batch([solution_str], [ground_truth], config=cfg, notes=[extra_info_note(extra_info)])[0].as_dict()


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any] | None = None, **kwargs: Any) -> list[dict[str, float]]:
    """verl's batched reward (``reward_manager=batch``, ``custom_reward_function.name: compute_score_batch``)."""
    cfg = _config_from_kwargs(kwargs)
    notes = [extra_info_note(e) for e in extra_infos] if extra_infos is not None else None
    return [r.as_dict() for r in score_batch(solution_strs, ground_truths, config=cfg, notes=notes)]
