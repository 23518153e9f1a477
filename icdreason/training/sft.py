"""``icdreason train sft``: trl's SFTTrainer on the SFT Parquet, loss on the assistant's answer only.

:func:`plan_sft` checks everything and returns the launch (``--dry-run`` prints it); :func:`run_sft` executes it.
One process (CPU, or one GPU) trains here; more GPUs go through ``accelerate launch`` with a config from
``train/accelerate/``, which starts ``python -m icdreason.training.sft --config OUT/train_config.yaml`` per GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import DependencyError, IcdreasonError, InputError
from .checks import check_gpus, check_model, cuda_device_count, train_dir
from .common import (
    CHECKPOINTS,
    check_output_dir,
    resolve_resume,
    save_final_model,
    summary_from_trainer,
    tensorboard_env,
)
from .data import check_sft_parquet, load_sft_dataset
from .export import TrainSummary, read_summary
from .launch import LaunchPlan
from .sft_config import DISTRIBUTED, SftConfig

__all__ = ["CONFIG_FILE", "plan_sft", "run_sft", "train_sft_worker"]

CONFIG_FILE = "train_config.yaml"  # the resolved config, written into the output folder


def plan_sft(cfg: SftConfig, *, dry_run: bool = False) -> LaunchPlan:
    """Check the inputs and build the launch. With ``dry_run``, device mismatches become notes instead of errors."""
    check_sft_parquet(cfg.train_file, flag="--train")
    if cfg.eval_file is not None:
        check_sft_parquet(cfg.eval_file, flag="--eval")
    cfg.model = check_model(cfg.model)
    check_output_dir(cfg.output_dir, resume_from=cfg.resume_from, overwrite=cfg.overwrite)
    if cfg.resume_from and cfg.resume_from != "latest":
        resolve_resume(cfg.output_dir, cfg.resume_from)
    notes: list[str] = []
    for check in (_check_trl, lambda: check_gpus(cfg.gpus or 0, what="train sft")):
        try:  # facts about this machine (packages, devices): errors for a run, notes for a dry run
            check()
        except IcdreasonError as exc:
            if not dry_run:
                raise
            notes.append(f"not runnable on this machine: {exc}")
    if "wandb" in cfg.report_to and not _has("wandb"):
        raise DependencyError("report_to wandb needs the wandb package: pip install wandb (or --report-to tensorboard)")
    config_path = Path(cfg.output_dir).resolve() / CONFIG_FILE
    worker = ["-m", "icdreason.training.sft", "--config", str(config_path)]
    gpus = cfg.gpus or 0
    if gpus <= 1:
        argv = [sys.executable, *worker]
        env = {}
        present = cuda_device_count()
        if gpus == 1 and present > 1:
            env["CUDA_VISIBLE_DEVICES"] = "0"
        return LaunchPlan(argv=argv, env=env, in_process=not env, notes=notes)
    if cfg.distributed.startswith("deepspeed") and not _has("deepspeed"):
        message = f"distributed={cfg.distributed} needs DeepSpeed: pip install deepspeed (or --distributed fsdp)"
        if not dry_run:
            raise DependencyError(message)
        notes.append(message)
    accelerate_config = cfg.accelerate_config or train_dir() / "accelerate" / DISTRIBUTED[cfg.distributed]
    if not Path(accelerate_config).is_file():
        raise InputError(f"accelerate config not found: {accelerate_config}")
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
            "--num_processes", str(gpus), "--num_machines", "1"]
    if cfg.distributed.startswith("deepspeed") and cfg.accelerate_config is None:
        # DeepSpeed takes precision from its JSON ("auto" = the trainer's bf16); the path is made absolute here.
        stage = cfg.distributed.rsplit("zero", 1)[1]
        argv += ["--deepspeed_config_file", str(train_dir() / "deepspeed" / f"zero{stage}.json")]
    else:
        argv += ["--mixed_precision", "bf16" if cfg.bf16 else "no"]
    return LaunchPlan(argv=[*argv, *worker], notes=notes)


def run_sft(cfg: SftConfig, *, progress=None) -> TrainSummary:
    """Check, launch and wait; returns the summary the trainer wrote into the output folder."""
    plan = plan_sft(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_FILE)
    if progress:
        progress(f"launch: {plan.shell()}")
    started = time.monotonic()
    if plan.in_process:
        summary = train_sft_worker(cfg, progress=progress)
    else:
        plan.run()
        summary = read_summary(out)
    summary.wall_seconds = round(time.monotonic() - started, 2)
    summary.save(out)
    return summary


def train_sft_worker(cfg: SftConfig, *, progress=None) -> TrainSummary:
    """The training itself (one process of a run); rank 0 saves the model and writes the summary."""
    import torch
    from transformers import AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    out = Path(cfg.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if not tokenizer.chat_template:
        raise InputError(f"{cfg.model} has no chat template: SFT needs an instruct model's tokenizer")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    padding_side = tokenizer.padding_side  # trl pads on the right for training; the saved model keeps the original
    train = load_sft_dataset(Path(cfg.train_file), max_samples=cfg.max_samples)
    evaluation = load_sft_dataset(Path(cfg.eval_file)) if cfg.eval_file else None
    model_kwargs = {"dtype": torch.bfloat16 if cfg.bf16 else torch.float32}
    if cfg.attn_implementation:
        model_kwargs["attn_implementation"] = cfg.attn_implementation
    args = TrlSFTConfig(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        optim=cfg.optimizer,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_length,
        completion_only_loss=True,
        bf16=bool(cfg.bf16),
        gradient_checkpointing=bool(cfg.gradient_checkpointing),
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if evaluation is not None else "no",
        eval_steps=cfg.eval_steps,
        seed=cfg.seed,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        run_name=cfg.run_name,
        use_cpu=(cfg.gpus or 0) == 0,
        dataset_num_proc=cfg.dataset_num_proc,
        model_init_kwargs=model_kwargs,
        disable_tqdm=True,
    )
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        targets = cfg.lora_target_modules
        peft_config = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type="CAUSAL_LM",
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        )
    resume = resolve_resume(out, cfg.resume_from)
    with tensorboard_env(out, cfg.report_to):
        trainer = SFTTrainer(model=cfg.model, args=args, train_dataset=train, eval_dataset=evaluation,
                             processing_class=tokenizer, peft_config=peft_config)
        _check_kept(len(train), len(trainer.train_dataset), cfg.max_length, progress)
        if progress:
            progress(f"training {len(train):,} examples: {trainer.args.max_steps if cfg.max_steps > 0 else 'all'} "
                     f"steps, batch {cfg.per_device_batch_size} x {cfg.gradient_accumulation_steps} accumulation x "
                     f"{max(cfg.gpus or 0, 1)} device(s)")
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=resume)
        seconds = time.monotonic() - started
    tokenizer.padding_side = padding_side
    save_final_model(trainer, out, tokenizer, lora=cfg.lora, base_model=cfg.model)
    summary = summary_from_trainer(trainer, command="sft", output_dir=out, base_model=cfg.model,
                                   train_rows=len(train), seconds=seconds, resumed_from=resume,
                                   report_to=cfg.report_to)
    if trainer.is_world_process_zero():
        summary.save(out)
    return summary


def _check_kept(given: int, kept: int, max_length: int, progress) -> None:
    """trl drops examples whose answer is cut off entirely by ``max_length``: say so, and stop if none is left."""
    if kept == 0:
        raise InputError(f"no example has answer tokens within max_length={max_length}: raise --max-length")
    if kept < given and progress:
        progress(f"left out {given - kept:,} of {given:,} examples whose answer starts after max_length={max_length}")


def _check_trl() -> None:
    for package in ("trl", "transformers", "datasets", "accelerate"):
        if not _has(package):
            raise DependencyError(f"train sft needs {package}: pip install 'icdreason[train]'")


def _has(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def main(argv: list[str] | None = None) -> None:
    """Entry point of each launched process: ``python -m icdreason.training.sft --config train_config.yaml``."""
    parser = argparse.ArgumentParser(prog="python -m icdreason.training.sft")
    parser.add_argument("--config", required=True, type=Path, help="A resolved SFT config (YAML).")
    args = parser.parse_args(argv)
    train_sft_worker(SftConfig.load(args.config))


if __name__ == "__main__":
    main()
