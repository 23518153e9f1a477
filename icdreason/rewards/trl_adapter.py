"""trl entry points of the rewards: :func:`reward_functions` for ``GRPOTrainer(reward_funcs=...)``.

Thin adapters over :func:`icdreason.rewards.scoring.score_batch`, one function per component. The dataset is read in
verl's layout (``reward_model``, ``extra_info``), so the RL Parquet of ``icdreason data prepare`` serves both
trainers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InputError, UsageError
from ..parse import THINK_CLOSE, THINK_OPEN
from .config import COMPONENTS, RewardConfig
from .scoring import score_batch
from .verl_adapter import extra_info_note

__all__ = ["completion_text", "reward_functions"]


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
        if reasoning and THINK_OPEN not in content and THINK_CLOSE not in content:
            # As a prefilled rollout writes it: the reward puts the opening <think> in front itself (the authors'
            # rules score a response that opens with its own <think> as malformed).
            content = f"{reasoning}{THINK_CLOSE}{content}"
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
        return [extra_info_note(e) for e in infos]
    notes = kwargs.get("note")
    return list(notes) if notes is not None else [None] * n


def reward_functions(config: RewardConfig | None = None, components: Sequence[str] | None = None,
                     judge: Any = None) -> list[Callable[..., list[float]]]:
    """trl reward functions, one per component (``__name__`` = the component), for ``GRPOTrainer(reward_funcs=…)``.

    Each is ``(prompts, completions, **kwargs) -> list[float]``; completions may be strings or lists of message
    dicts. The gold code comes from the dataset column ``reward_model`` (``{"ground_truth": code}``, verl's
    layout), ``ground_truth`` or ``code``; the note for the judge from ``extra_info["note"]`` or ``note``. trl sums
    the functions (``reward_weights`` default to 1), so the total equals
    :func:`~icdreason.rewards.scoring.score_response`'s score.
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
