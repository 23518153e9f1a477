"""The reward file verl loads by path: ``custom_reward_function.path=train/reward_fn.py``.

verl imports this file with ``importlib`` (not as part of a package), so it only re-exports the installed
``icdreason`` package's reward functions; install icdreason into the environment verl runs in.

- Per response (verl's default ``naive`` reward manager)::

      custom_reward_function.path=train/reward_fn.py custom_reward_function.name=compute_score

- Batched (verl 0.5's ``reward_model.reward_manager=batch``, as the paper's jobs ran; one call per step, the judge then
  runs its requests concurrently)::

      custom_reward_function.path=train/reward_fn.py custom_reward_function.name=compute_score_batch

The reward is the ``deepicd-r1`` preset unless told otherwise: the DeepICD-R1 authors' single-trace function with the
GRPO jobs' constants (15 x len(gold) for an exact code, prefix partial credit, -1 for no or a malformed answer, +1 for
the think block, -1 per extra pair, -5 for an empty response, 0.8 x the LLM judge's score; the judge only with a
``judge_url``). Settings come from the environment (``ICDREASON_REWARD_PRESET``, ``ICDREASON_REWARD_CONFIG=reward.yaml``
and ``ICDREASON_REWARD_<FIELD>`` variables, set them in the Ray runtime env) and are overridden by verl's
``+custom_reward_function.reward_kwargs.<field>=<value>`` (for example ``...reward_kwargs.preset=icdreason`` or
``...reward_kwargs.judge_url=http://judge:8000/v1``). Unknown settings stop the run at the first step with a message
listing the known ones. See docs/rewards.md.
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
