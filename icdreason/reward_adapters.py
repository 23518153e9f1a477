"""verl and trl entry points of the rewards: thin adapters over :func:`icdreason.rewards.score_batch`.

- :func:`compute_score` / :func:`compute_score_batch`: verl's custom reward signatures (``train/reward_fn.py``);
  settings from ``ICDREASON_REWARD_*`` variables, a YAML file, and verl's ``reward_kwargs``.
- :func:`reward_functions`: trl ``GRPOTrainer`` reward functions, one per component.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import InputError, UsageError
from .rewards import _CLOSE_T, _OPEN_T, COMPONENTS, RewardConfig, score_batch

# ---------------------------------------------------------------------------------------------------------------
# verl adapters

#: Keyword arguments verl's reward managers add on their own; they are not reward settings.
_VERL_EXTRAS = frozenset({"reward_router_address", "reward_model_tokenizer", "return_dict", "num_examine"})
_config_cache: dict[tuple, RewardConfig] = {}
_ENV_PREFIX = "ICDREASON_REWARD_"


def _env_snapshot() -> tuple:
    """The ICDREASON_REWARD_* variables (part of the config cache key: this runs once per verl reward call)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIX)))


_config_lock = threading.Lock()


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
                base = RewardConfig.from_yaml(config_file, base=base)
            plain = {k: (list(v) if not isinstance(v, (str, int, float, bool, type(None))) else v)
                     for k, v in settings.items()}
            cfg = RewardConfig.from_dict(plain, base=base) if plain else base
            _config_cache[key] = cfg
    return cfg


def _note(extra_info: Any) -> str | None:
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
    return score_batch([solution_str], [ground_truth], config=cfg, notes=[_note(extra_info)])[0].as_dict()


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any] | None = None, **kwargs: Any) -> list[dict[str, float]]:
    """verl's batched reward (``reward_manager=batch``, ``custom_reward_function.name: compute_score_batch``)."""
    cfg = _config_from_kwargs(kwargs)
    notes = [_note(e) for e in extra_infos] if extra_infos is not None else None
    return [r.as_dict() for r in score_batch(solution_strs, ground_truths, config=cfg, notes=notes)]


# ---------------------------------------------------------------------------------------------------------------
# trl adapters


def completion_text(completion: Any) -> str:
    """The text of a trl completion: a string, or a list of message dicts (conversational)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        messages = [completion]
    elif completion is None:
        return ""
    else:
        messages = list(completion)
    texts = []
    for m in messages:
        if not isinstance(m, Mapping):
            texts.append(str(m))
            continue
        content = m.get("content") or ""
        if isinstance(content, list):  # multimodal content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        reasoning = m.get("reasoning_content") or m.get("thinking") or m.get("reasoning")
        if reasoning and _OPEN_T not in content and _CLOSE_T not in content:
            content = f"{_OPEN_T}{reasoning}{_CLOSE_T}{content}"
        texts.append(content)
    return "".join(texts)


def _trl_golds(n: int, kwargs: Mapping[str, Any]) -> list[Any]:
    for key in ("reward_model", "ground_truth", "code", "solution"):
        values = kwargs.get(key)
        if values is not None:
            if len(values) != n:
                raise UsageError(f"column {key!r} has {len(values)} values for {n} completions")
            return list(values)
    raise InputError("the trl dataset needs a gold-code column: reward_model (verl layout), ground_truth or code")


def _trl_notes(n: int, kwargs: Mapping[str, Any]) -> list[str | None]:
    infos = kwargs.get("extra_info")
    if infos is not None:
        return [_note(e) for e in infos]
    notes = kwargs.get("note")
    return list(notes) if notes is not None else [None] * n


def reward_functions(config: RewardConfig | None = None, components: Sequence[str] | None = None,
                     judge: Any = None) -> list[Callable[..., list[float]]]:
    """trl reward functions, one per component (``__name__`` = the component), for ``GRPOTrainer(reward_funcs=…)``.

    Each is ``(prompts, completions, **kwargs) -> list[float]``; completions may be strings or lists of message
    dicts. The gold code comes from the dataset column ``reward_model`` (``{"ground_truth": code}``, verl's
    layout), ``ground_truth`` or ``code``; the note for the judge from ``extra_info["note"]`` or ``note``. trl sums
    the functions (``reward_weights`` default to 1), so the total equals :func:`score_response`'s score.
    """
    base = config or RewardConfig()
    names = list(components) if components is not None else list(base.components)
    funcs = []
    for name in names:
        if name not in COMPONENTS:
            raise UsageError(f"unknown reward component {name!r} (choose from {', '.join(COMPONENTS)})")
        only = dataclasses.replace(base, components=(name,))

        def func(prompts=None, completions=None, _cfg=only, _name=name, **kwargs) -> list[float]:
            texts = [completion_text(c) for c in (completions or [])]
            golds = _trl_golds(len(texts), kwargs)
            results = score_batch(texts, golds, config=_cfg, notes=_trl_notes(len(texts), kwargs), judge=judge)
            return [r.components[_name] for r in results]

        func.__name__ = name
        func.__qualname__ = name
        func.__doc__ = f"icdreason {name} reward (trl signature)."
        funcs.append(func)
    return funcs
