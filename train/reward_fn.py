"""The reward file verl loads by path: ``custom_reward_function.path=train/reward_fn.py``.

verl imports this file with ``importlib`` (not as part of a package), so it only re-exports the installed
``icdreason`` package's reward functions; install icdreason into the environment verl runs in.

- Per response (verl's default ``naive`` reward manager)::

      custom_reward_function.path=train/reward_fn.py custom_reward_function.name=compute_score

- Batched (``reward_model.reward_manager=batch``; one call per step, the judge then runs its requests concurrently)::

      custom_reward_function.path=train/reward_fn.py custom_reward_function.name=compute_score_batch

Settings come from the environment (``ICDREASON_REWARD_CONFIG=reward.yaml`` and ``ICDREASON_REWARD_<FIELD>``
variables, set them in the Ray runtime env) and are overridden by verl's
``+custom_reward_function.reward_kwargs.<field>=<value>`` (for example ``...reward_kwargs.match_weight=15`` or
``...reward_kwargs.components=format,outcome,length,trace,judge``). Unknown settings stop the run at the first step
with a message listing the known ones. See docs/rewards.md.
"""

try:
    from icdreason.rewards import (  # noqa: F401
        RewardConfig,
        compute_score,
        compute_score_batch,
        reward_functions,
        score_response,
    )
except ImportError as exc:  # pragma: no cover - depends on the training environment
    raise ImportError(
        "train/reward_fn.py needs the icdreason package in the environment verl runs in: "
        "`pip install -e /path/to/icdreason` (or add it to the Ray runtime env)"
    ) from exc

__all__ = ["RewardConfig", "compute_score", "compute_score_batch", "reward_functions", "score_response"]
