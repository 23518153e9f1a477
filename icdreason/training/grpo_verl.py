"""``icdreason train grpo --backend verl``: ``python -m verl.trainer.main_ppo`` with the model card's settings.

:func:`verl_overrides` turns a :class:`GrpoConfig` into Hydra overrides; every key is checked against the installed
verl's packaged config (:mod:`icdreason.training.verl_config`) before anything starts. After the run the newest
checkpoint's Hugging Face export (``global_step_N/actor/huggingface``, saved because ``hf_model`` is in the actor's
``checkpoint.save_contents``) is copied into the output folder so ``icdreason predict --model OUT`` loads it.

verl loads the reward function on each of its reward workers, which Ray places on any node. On one machine it reads
``train/reward_fn.py`` and the run's ``reward.yaml`` by path. With ``--ray-address`` (a cluster, perhaps without a
shared filesystem) nothing is read by a local path: the function is ``pkg://icdreason.rewards.verl_adapter``, the
icdreason package travels to every node in the job's Ray runtime environment (``py_modules``), and every reward setting
is an inline Hydra value (:func:`inline_reward_overrides`).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import DependencyError, InputError, UsageError
from ..rewards.config import RewardConfig
from ..rewards.report import REWARD_FILE, check_reward_setup, write_reward_config
from .checks import check_gpus, check_run_inputs, cuda_device_count, has_package, machine_check, train_dir
from .common import CHECKPOINTS, LOGS
from .data import check_rl_parquet
from .export import TrainSummary, finalize_model_dir
from .grpo_config import GrpoConfig
from .launch import CONFIG_FILE, LaunchPlan
from .verl_config import check_overrides, composed_config, flat_keys, verl_version

__all__ = ["CONFIG_FILE", "REWARD_MODULE", "export_verl_model", "inline_reward_overrides", "plan_verl", "run_verl",
           "verl_overrides"]

#: The reward module verl imports on each worker when the run joins a Ray cluster (``pkg://`` = import by name).
REWARD_MODULE = "icdreason.rewards.verl_adapter"

_GLOBAL_STEP = re.compile(r"^global_step_(\d+)$")


def _b(value: bool) -> str:
    return "true" if value else "false"


def verl_overrides(cfg: GrpoConfig, *, reward_file: Path, config: dict | None = None,
                   reward: RewardConfig | None = None) -> list[str]:
    """The Hydra overrides of a run, in the order verl's docs list them (paths absolute). With ``cfg.ray_address``
    the reward function and its settings (``reward``) are shipped instead of given as local paths."""
    keys = flat_keys(config if config is not None else composed_config())
    out = Path(cfg.output_dir).resolve()
    train = str(Path(cfg.train_file).resolve()) if cfg.train_file else ""
    # Without --val nothing is validated (test_freq -1, no validation before training). verl (0.9.1) still builds a
    # validation dataset from data.val_files (a null there fails), so it gets the train file cut to one row
    # (data.val_max_samples=1): read, never evaluated, and not a second pass over the whole train file.
    val = str(Path(cfg.val_file).resolve()) if cfg.val_file else train
    # verl >= 0.6 reads the reward function from reward.custom_reward_function; older releases from the top level
    # (0.9 still accepts the top level and moves it). Use the one the installed verl documents.
    reward_key = "reward.custom_reward_function" if "reward.custom_reward_function.path" in keys \
        else "custom_reward_function"
    micro = cfg.micro_batch_size_per_gpu
    o = [
        "algorithm.adv_estimator=grpo",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"data.train_batch_size={cfg.train_batch_size}",
        f"data.max_prompt_length={cfg.max_prompt_length}",
        f"data.max_response_length={cfg.max_response_length}",
        "data.filter_overlong_prompts=true",
        f"data.seed={cfg.seed}",
        f"actor_rollout_ref.model.path={cfg.model}",
        f"actor_rollout_ref.model.use_remove_padding={_b(cfg.remove_padding)}",
        f"actor_rollout_ref.model.enable_gradient_checkpointing={_b(cfg.gradient_checkpointing)}",
        f"actor_rollout_ref.actor.optim.lr={cfg.learning_rate}",
        f"actor_rollout_ref.actor.optim.lr_warmup_steps={cfg.warmup_steps}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={cfg.ppo_mini_batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.actor.use_kl_loss={_b(cfg.use_kl_loss)}",
        f"actor_rollout_ref.actor.entropy_coeff={cfg.entropy_coeff}",
        f"actor_rollout_ref.actor.use_torch_compile={_b(cfg.torch_compile)}",
        f"actor_rollout_ref.actor.fsdp_config.param_offload={_b(cfg.param_offload)}",
        f"actor_rollout_ref.actor.fsdp_config.optimizer_offload={_b(cfg.optimizer_offload)}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        f"actor_rollout_ref.rollout.name={cfg.rollout_engine}",
        f"actor_rollout_ref.rollout.n={cfg.rollout_n}",
        f"actor_rollout_ref.rollout.temperature={cfg.temperature}",
        f"actor_rollout_ref.rollout.top_k={cfg.top_k}",
        f"actor_rollout_ref.rollout.top_p={cfg.top_p}",
        f"actor_rollout_ref.rollout.dtype={cfg.rollout_dtype}",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={cfg.tensor_parallel_size}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={cfg.gpu_memory_utilization}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.fsdp_config.param_offload={_b(cfg.param_offload)}",
        "algorithm.use_kl_in_reward=false",
        f"algorithm.kl_ctrl.kl_coef={cfg.kl_coef}",
        *_reward_overrides(cfg, reward_key, reward_file, reward),
        f"trainer.total_epochs={cfg.epochs}",
        f"trainer.n_gpus_per_node={cfg.gpus}",
        f"trainer.nnodes={cfg.nnodes}",
        f"trainer.logger=[{','.join(['console', *[r for r in cfg.report_to if r != 'none']])}]",
        f"trainer.project_name={cfg.project_name}",
        f"trainer.experiment_name={cfg.run_name}",
        f"trainer.default_local_dir={out / CHECKPOINTS}",
        f"trainer.save_freq={cfg.save_freq}",
        f"trainer.test_freq={cfg.test_freq if cfg.val_file else -1}",
        f"trainer.val_before_train={_b(bool(cfg.val_file) and cfg.val_before_train)}",
        "trainer.critic_warmup=0",
    ]
    if cfg.max_steps is not None:
        o.append(f"trainer.total_training_steps={cfg.max_steps}")
    if cfg.resume_from == "latest":
        o.append("trainer.resume_mode=auto")
    elif cfg.resume_from:
        o += ["trainer.resume_mode=resume_path", f"trainer.resume_from_path={Path(cfg.resume_from).resolve()}"]
    else:
        o.append("trainer.resume_mode=disable")
    if cfg.max_samples is not None:
        o.append(f"data.train_max_samples={cfg.max_samples}")
    if not cfg.val_file and "data.val_max_samples" in keys:
        o.append("data.val_max_samples=1")
    return [*o, *cfg.verl_overrides]


def _reward_overrides(cfg: GrpoConfig, key: str, reward_file: Path, reward: RewardConfig | None) -> list[str]:
    if not cfg.ray_address:  # one machine: the reward file and the settings file, by path
        return [f"{key}.path={train_dir() / 'reward_fn.py'}", f"{key}.name=compute_score",
                f"+{key}.reward_kwargs.config={reward_file}"]
    if reward is None:
        raise UsageError("a run on a Ray cluster needs its resolved reward settings to ship them")
    package = Path(__file__).resolve().parents[1]  # the icdreason package, uploaded by Ray to every node
    return [f"{key}.path=pkg://{REWARD_MODULE}", f"{key}.name=compute_score",
            *inline_reward_overrides(reward, key),
            f"+ray_kwargs.ray_init.runtime_env.py_modules=[{_hydra_value(str(package))}]"]


def inline_reward_overrides(reward: RewardConfig, key: str = "reward.custom_reward_function") -> list[str]:
    """One ``+KEY.reward_kwargs.<setting>=<value>`` per reward setting: verl pickles them to every reward worker,
    whose ``compute_score`` receives them as keyword arguments (they win over ``ICDREASON_REWARD_*`` variables)."""
    return [f"+{key}.reward_kwargs.{name}={_hydra_value(value)}"
            for name, value in dataclasses.asdict(reward).items()]


def _hydra_value(value: Any) -> str:
    """A Python value in Hydra's override syntax: null, true/false, numbers, quoted strings, [lists]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    # Inside quotes Hydra unescapes only quotes and the backslashes just before a quote (or the closing one).
    text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, str(value))
    return "'" + text.replace("'", "\\'") + "'"


def plan_verl(cfg: GrpoConfig, *, dry_run: bool = False) -> LaunchPlan:
    """Check everything a verl run needs and build its command. ``dry_run`` turns device facts into notes."""
    cfg.resolve(devices=cuda_device_count)
    check_run_inputs(cfg, check_rl_parquet, eval_file=cfg.val_file, eval_flag="--val")
    if cfg.resume_from and cfg.resume_from != "latest" and not _GLOBAL_STEP.match(Path(cfg.resume_from).name):
        raise InputError(f"--resume-from {cfg.resume_from}: verl resumes from a global_step_N folder or 'latest'")
    reward, notes = check_reward_setup(**cfg.reward_options(), dry_run=dry_run)
    if not cfg.val_file:
        notes.append("no --val: nothing is validated (test_freq -1, val_before_train false); verl still builds a "
                     "validation dataset, so it gets one row of the train file (data.val_max_samples=1), never "
                     "evaluated")
    config = composed_config()
    out = Path(cfg.output_dir).resolve()
    overrides = verl_overrides(cfg, reward_file=out / REWARD_FILE, config=config, reward=reward)
    check_overrides(overrides, config)
    machine_check(lambda: _check_devices(cfg), notes, dry_run=dry_run)
    env = {}
    if "tensorboard" in cfg.report_to:
        env["TENSORBOARD_DIR"] = str(out / LOGS)
    if cfg.ray_address:
        env["RAY_ADDRESS"] = cfg.ray_address
    return LaunchPlan(argv=[sys.executable, "-m", "verl.trainer.main_ppo", *overrides], env=env, notes=notes)


def _check_devices(cfg: GrpoConfig) -> None:
    if cuda_device_count() == 0:
        raise DependencyError("the verl backend needs CUDA GPUs and none are visible: run on a GPU node, or use "
                              "--backend trl for a single-machine (CPU) run")
    if cfg.nnodes == 1:
        check_gpus(cfg.gpus or 0, what="train grpo")
    missing = [m for m in ("ray", "hydra", "vllm") if not has_package(m)]
    if missing:
        raise DependencyError(f"verl's dependencies are missing here ({', '.join(missing)}): use verl's container "
                              f"image or `pip install verl[vllm]` in the environment that trains (docs/training.md)")


def run_verl(cfg: GrpoConfig, *, progress=None) -> TrainSummary:
    """Check, write the resolved configs, run verl, export the final model and write the summary."""
    plan = plan_verl(cfg)
    reward_cfg, _ = check_reward_setup(**cfg.reward_options(), dry_run=False)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_FILE)
    write_reward_config(reward_cfg, out / REWARD_FILE)
    (out / "verl_command.sh").write_text("#!/bin/sh\n" + plan.shell() + "\n", encoding="utf-8")
    if progress:
        progress(f"launch: {plan.shell()}")
    started = time.monotonic()
    plan.run()
    seconds = time.monotonic() - started
    step = export_verl_model(out)
    summary = TrainSummary(
        command="grpo", backend="verl", model_dir=str(out.resolve()), steps=step, wall_seconds=round(seconds, 2),
        base_model=cfg.model, train_rows=check_rl_parquet(cfg.train_file).rows,
        log_dir=str((out / LOGS).resolve()) if "tensorboard" in cfg.report_to else None,
        checkpoints_dir=str((out / CHECKPOINTS).resolve()), resumed_from=cfg.resume_from,
        metrics={"verl_version": verl_version()},
    )
    summary.save(out)
    return summary


def export_verl_model(out: Path) -> int:
    """Copy the newest checkpoint's Hugging Face export into ``out``; returns its step."""
    ckpts = Path(out) / CHECKPOINTS
    tracker = ckpts / "latest_checkpointed_iteration.txt"
    if not tracker.is_file():
        raise InputError(f"verl wrote no checkpoint into {ckpts} (no latest_checkpointed_iteration.txt): set "
                         f"save_freq to at most the number of steps")
    step = int(tracker.read_text().strip())
    hf = ckpts / f"global_step_{step}" / "actor" / "huggingface"
    if not any(hf.glob("*.safetensors")) and not any(hf.glob("*.bin")):
        raise InputError(f"{hf} holds no weights: the actor's checkpoint.save_contents must include hf_model")
    for item in hf.iterdir():
        if item.is_file():
            shutil.copy2(item, Path(out) / item.name)
    from transformers import AutoConfig, AutoTokenizer

    finalize_model_dir(Path(out), AutoTokenizer.from_pretrained(hf), AutoConfig.from_pretrained(hf))
    return step


def describe_override_sources() -> str:
    """Where the override keys were checked (for --dry-run output)."""
    from .verl_config import verl_config_dir

    try:
        return f"verl {verl_version() or '?'} ({verl_config_dir() / 'ppo_trainer.yaml'})"
    except DependencyError as exc:
        raise UsageError(str(exc)) from None
