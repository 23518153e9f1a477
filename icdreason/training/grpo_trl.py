"""``icdreason train grpo --backend trl``: trl's GRPOTrainer with the icdreason reward functions, on one machine.

The model card's verl settings map onto trl like this: a step samples ``rollout_n`` responses for each of
``train_batch_size`` prompts and makes one policy update (``ppo_mini_batch_size == train_batch_size``), so trl's
generation batch is ``train_batch_size x rollout_n`` completions, consumed in micro batches of
``micro_batch_size_per_gpu`` with gradient accumulation. KL is off (``beta=0``, the model card's "KL loss:
disabled"), the entropy bonus is ``entropy_coeff``, the schedule is constant after ``warmup_steps`` (verl's default).
Prompts longer than ``max_prompt_length`` tokens are left out, as verl's ``data.filter_overlong_prompts`` does.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from ..errors import DependencyError, IcdreasonError, InputError, UsageError
from .checks import check_gpus, check_model, cuda_device_count
from .common import (
    CHECKPOINTS,
    check_output_dir,
    resolve_resume,
    save_final_model,
    summary_from_trainer,
    tensorboard_env,
)
from .data import check_rl_parquet, load_rl_dataset
from .export import TrainSummary, read_summary
from .grpo_config import GrpoConfig
from .launch import LaunchPlan
from .rewarding import REWARD_FILE, check_reward_setup, write_reward_config

__all__ = ["CONFIG_FILE", "plan_trl_grpo", "run_trl_grpo", "trl_batches"]

CONFIG_FILE = "train_config.yaml"


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
    check_rl_parquet(cfg.train_file, flag="--train")
    if cfg.val_file is not None:
        check_rl_parquet(cfg.val_file, flag="--val")
    cfg.model = check_model(cfg.model)
    check_output_dir(cfg.output_dir, resume_from=cfg.resume_from, overwrite=cfg.overwrite)
    if cfg.resume_from and cfg.resume_from != "latest":
        resolve_resume(cfg.output_dir, cfg.resume_from)
    if cfg.verl_overrides:
        raise UsageError("--verl-override applies to --backend verl only")
    if cfg.gpus and cfg.gpus > 1:
        raise UsageError("the trl backend of train grpo runs one process: pass --gpus 1 (or use --backend verl)")
    trl_batches(cfg)
    _, notes = check_reward_setup(cfg, dry_run=dry_run)
    try:
        check_gpus(cfg.gpus or 0, what="train grpo")
    except IcdreasonError as exc:
        if not dry_run:
            raise
        notes.append(f"not runnable on this machine: {exc}")
    if "wandb" in cfg.report_to and importlib.util.find_spec("wandb") is None:
        raise DependencyError("report_to wandb needs the wandb package: pip install wandb (or --report-to tensorboard)")
    config_path = Path(cfg.output_dir).resolve() / CONFIG_FILE
    argv = [sys.executable, "-m", "icdreason.training.grpo_trl", "--config", str(config_path)]
    # One process on one device: with several GPUs visible, a child process sees only the first one.
    env = {"CUDA_VISIBLE_DEVICES": "0"} if cfg.gpus == 1 and cuda_device_count() > 1 else {}
    return LaunchPlan(argv=argv, env=env, in_process=not env, notes=notes)


def run_trl_grpo(cfg: GrpoConfig, *, progress=None) -> TrainSummary:
    """Check, train, save the model and the summary."""
    plan = plan_trl_grpo(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_FILE)
    started = time.monotonic()
    if plan.in_process:
        summary = train_grpo_worker(cfg, progress=progress)
    else:
        if progress:
            progress(f"launch: {plan.shell()}")
        plan.run()
        summary = read_summary(out)
    summary.wall_seconds = round(time.monotonic() - started, 2)
    summary.save(out)
    return summary


def train_grpo_worker(cfg: GrpoConfig, *, progress=None) -> TrainSummary:
    """The GRPO training itself."""
    import torch
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from ..rewards import reward_functions

    out = Path(cfg.output_dir)
    reward_cfg, _ = check_reward_setup(cfg, dry_run=False)
    write_reward_config(reward_cfg, out / REWARD_FILE)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    padding_side = tokenizer.padding_side
    train = _fit_prompts(load_rl_dataset(Path(cfg.train_file), max_samples=cfg.max_samples), tokenizer,
                         cfg.max_prompt_length, progress)
    per_device, accumulation = trl_batches(cfg)
    cpu = (cfg.gpus or 0) == 0
    args = GRPOConfig(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_generations=cfg.rollout_n,
        max_completion_length=cfg.max_response_length,
        temperature=cfg.temperature,
        top_k=0 if cfg.top_k < 0 else cfg.top_k,
        top_p=cfg.top_p,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=cfg.warmup_steps,
        beta=cfg.kl_coef if cfg.use_kl_loss else 0.0,
        entropy_coef=cfg.entropy_coeff,
        gradient_checkpointing=cfg.gradient_checkpointing and not cpu,
        bf16=not cpu,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_freq,
        seed=cfg.seed,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        run_name=cfg.run_name,
        use_cpu=cpu,
        model_init_kwargs={"dtype": torch.float32 if cpu else torch.bfloat16},
        disable_tqdm=True,
    )
    funcs = reward_functions(reward_cfg, components=cfg.rewards)
    resume = resolve_resume(out, cfg.resume_from)
    with tensorboard_env(out, cfg.report_to):
        trainer = GRPOTrainer(model=cfg.model, reward_funcs=funcs, args=args, train_dataset=train,
                              processing_class=tokenizer)
        if progress:
            progress(f"GRPO on {len(train):,} prompts: {cfg.rollout_n} responses each, rewards "
                     f"{'+'.join(cfg.rewards)}, micro batch {per_device} x {accumulation} accumulation")
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=resume)
        seconds = time.monotonic() - started
    tokenizer.padding_side = padding_side
    save_final_model(trainer, out, tokenizer, lora=False, base_model=cfg.model)
    summary = summary_from_trainer(trainer, command="grpo", output_dir=out, base_model=cfg.model,
                                   train_rows=len(train), seconds=seconds, resumed_from=resume,
                                   report_to=cfg.report_to)
    if trainer.is_world_process_zero():
        summary.save(out)
    return summary


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
