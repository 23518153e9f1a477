"""``icdreason train grpo --backend trl``: trl's GRPOTrainer with the icdreason reward functions, on one machine.

The model card's verl settings map onto trl like this: a step samples ``rollout_n`` responses for each of
``train_batch_size`` prompts and makes one policy update (``ppo_mini_batch_size == train_batch_size``), so trl's
generation batch is ``train_batch_size x rollout_n`` completions, consumed in micro batches of
``micro_batch_size_per_gpu`` with gradient accumulation. KL is off (``beta=0``, the model card's "KL loss:
disabled"), the entropy bonus is ``entropy_coeff``, the schedule is constant after ``warmup_steps`` (verl's default).
Prompts longer than ``max_prompt_length`` tokens are left out, as verl's ``data.filter_overlong_prompts`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError, UsageError
from ..rewards.report import REWARD_FILE, check_reward_setup, write_reward_config
from .checks import check_gpus, check_loggers, check_run_inputs, cuda_device_count, machine_check
from .common import load_tokenizer, resolve_resume, train_and_save, trainer_args
from .data import check_rl_parquet, load_rl_dataset
from .export import TrainSummary
from .grpo_config import GrpoConfig
from .launch import CONFIG_FILE, LaunchPlan, launch_trl

__all__ = ["CONFIG_FILE", "plan_trl_grpo", "run_trl_grpo", "trl_batches"]


def trl_batches(cfg: GrpoConfig) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) so that one optimizer step sees the whole rollout batch."""
    world = max(cfg.gpus or 0, 1)
    completions = cfg.ppo_mini_batch_size * cfg.rollout_n
    per_device = min(cfg.micro_batch_size_per_gpu, completions // world or 1)
    if completions % (per_device * world):
        raise UsageError(f"ppo_mini_batch_size x rollout_n = {completions} completions must split evenly into micro "
                         f"batches of {per_device} on {world} device(s): change micro_batch_size_per_gpu")
    return per_device, completions // (per_device * world)


def plan_trl_grpo(cfg: GrpoConfig, *, dry_run: bool = False) -> LaunchPlan:
    """Check a trl GRPO run. It runs in this process (``python -m icdreason.training.grpo_trl`` is the equivalent
    command), or as that command restricted to the first GPU when several are visible."""
    cfg.resolve(devices=cuda_device_count)
    check_run_inputs(cfg, check_rl_parquet, eval_file=cfg.val_file, eval_flag="--val")
    if cfg.resume_from and cfg.resume_from != "latest":
        resolve_resume(cfg.output_dir, cfg.resume_from)
    if cfg.verl_overrides:
        raise UsageError("--verl-override applies to --backend verl only")
    if cfg.gpus and cfg.gpus > 1:
        raise UsageError("the trl backend of train grpo runs one process: pass --gpus 1 (or use --backend verl)")
    trl_batches(cfg)
    _, notes = check_reward_setup(**cfg.reward_options(), dry_run=dry_run)
    if cfg.val_file:
        notes.append("the trl backend does not validate during training: --val is checked, not used (validation "
                     "runs with --backend verl)")
    machine_check(lambda: check_gpus(cfg.gpus or 0, what="train grpo"), notes, dry_run=dry_run)
    check_loggers(cfg.report_to)
    config_path = Path(cfg.output_dir).resolve() / CONFIG_FILE
    argv = [sys.executable, "-m", "icdreason.training.grpo_trl", "--config", str(config_path)]
    # One process on one device: with several GPUs visible, a child process sees only the first one.
    env = {"CUDA_VISIBLE_DEVICES": "0"} if cfg.gpus == 1 and cuda_device_count() > 1 else {}
    return LaunchPlan(argv=argv, env=env, in_process=not env, notes=notes)


def run_trl_grpo(cfg: GrpoConfig, *, progress=None) -> TrainSummary:
    """Check, train, save the model and the summary."""
    return launch_trl(plan_trl_grpo(cfg), cfg, train_grpo_worker, progress=progress, announce_in_process=False)


def train_grpo_worker(cfg: GrpoConfig, *, progress=None) -> TrainSummary:
    """The GRPO training itself."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    from ..rewards import reward_functions

    cfg.resolve(devices=cuda_device_count)
    reward_cfg, _ = check_reward_setup(**cfg.reward_options(), dry_run=False)
    write_reward_config(reward_cfg, Path(cfg.output_dir) / REWARD_FILE)
    tokenizer = load_tokenizer(cfg.model)
    train = _fit_prompts(load_rl_dataset(Path(cfg.train_file), max_samples=cfg.max_samples), tokenizer,
                         cfg.max_prompt_length, progress)
    per_device, accumulation = trl_batches(cfg)
    cpu = (cfg.gpus or 0) == 0
    args = GRPOConfig(
        **trainer_args(cfg),
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_generations=cfg.rollout_n,
        max_completion_length=cfg.max_response_length,
        temperature=cfg.temperature,
        top_k=0 if cfg.top_k < 0 else cfg.top_k,
        top_p=cfg.top_p,
        lr_scheduler_type="constant_with_warmup",
        beta=cfg.kl_coef if cfg.use_kl_loss else 0.0,
        entropy_coef=cfg.entropy_coeff,
        gradient_checkpointing=cfg.gradient_checkpointing and not cpu,
        bf16=not cpu,
        save_steps=cfg.save_freq,
        model_init_kwargs={"dtype": torch.float32 if cpu else torch.bfloat16},
    )
    funcs = reward_functions(reward_cfg)

    def build_trainer():
        trainer = GRPOTrainer(model=cfg.model, reward_funcs=funcs, args=args, train_dataset=train,
                              processing_class=tokenizer)
        if progress:
            progress(f"GRPO on {len(train):,} prompts: {cfg.rollout_n} responses each, rewards "
                     f"{'+'.join(reward_cfg.components)}, micro batch {per_device} x {accumulation} accumulation")
        return trainer

    return train_and_save(cfg, tokenizer, build_trainer, command="grpo", train_rows=len(train))


def _fit_prompts(dataset, tokenizer, max_prompt_length: int, progress):
    """Leave out prompts longer than ``max_prompt_length`` tokens (verl's filter_overlong_prompts)."""
    def fits(row) -> bool:
        ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        return len(ids) <= max_prompt_length

    kept = dataset.filter(fits)
    dropped = len(dataset) - len(kept)
    if dropped and progress:
        progress(f"left out {dropped:,} prompts longer than {max_prompt_length} tokens")
    if len(kept) == 0:
        raise InputError(f"every prompt is longer than max_prompt_length={max_prompt_length} tokens")
    return kept


def main(argv: list[str] | None = None) -> None:
    """``python -m icdreason.training.grpo_trl --config train_config.yaml`` (what the CLI runs in-process)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m icdreason.training.grpo_trl")
    parser.add_argument("--config", required=True, type=Path, help="A resolved GRPO config (YAML).")
    args = parser.parse_args(argv)
    train_grpo_worker(GrpoConfig.load(args.config))


if __name__ == "__main__":
    main()
