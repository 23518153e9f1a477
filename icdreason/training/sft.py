"""``icdreason train sft``: trl's SFTTrainer on the SFT Parquet, loss on the assistant's answer only.

:func:`plan_sft` checks everything and returns the launch (``--dry-run`` prints it); :func:`run_sft` executes it.
One process (CPU, or one GPU) trains here; more GPUs go through ``accelerate launch`` with a config from
``train/accelerate/``, which starts ``python -m icdreason.training.sft --config OUT/train_config.yaml`` per GPU.
Several machines (``nnodes``) run the same command, each with its ``node_rank``; accelerate's ``--num_processes`` is
then the total over all machines, and each machine writes its own copy of the resolved config, so no shared
filesystem is needed for it (the model and the training data must be on every machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DependencyError, InputError, UsageError
from .checks import (
    check_gpus,
    check_loggers,
    check_run_inputs,
    cuda_device_count,
    has_package,
    machine_check,
    schedule_notes,
    train_dir,
)
from .common import load_tokenizer, resolve_resume, train_and_save, trainer_args
from .data import check_sft_parquet, load_sft_dataset
from .export import TrainSummary
from .launch import CONFIG_FILE, LaunchPlan, launch_trl
from .sft_config import DISTRIBUTED, SftConfig

__all__ = ["CONFIG_FILE", "plan_sft", "run_sft", "train_sft_worker"]


def plan_sft(cfg: SftConfig, *, dry_run: bool = False) -> LaunchPlan:
    """Resolve the machine-dependent defaults, check the inputs and build the launch. With ``dry_run``, device
    mismatches become notes instead of errors."""
    cfg.resolve(devices=cuda_device_count)
    check_run_inputs(cfg, check_sft_parquet, eval_file=cfg.eval_file, eval_flag="--eval")
    if cfg.resume_from and cfg.resume_from != "latest":
        resolve_resume(cfg.output_dir, cfg.resume_from)
    notes: list[str] = []
    machine_check(_check_trl, notes, dry_run=dry_run)
    machine_check(lambda: check_gpus(cfg.gpus or 0, what="train sft"), notes, dry_run=dry_run)
    check_loggers(cfg.report_to)
    notes += schedule_notes(cfg, batch_field="effective_batch_size", drops_last=False)
    config_path = Path(cfg.output_dir).resolve() / CONFIG_FILE
    worker = ["-m", "icdreason.training.sft", "--config", str(config_path)]
    gpus = cfg.gpus or 0
    if cfg.nnodes > 1 and gpus < 1:
        raise UsageError("multi-node training (nnodes > 1) needs GPUs: pass --gpus with the GPUs of each machine")
    if gpus <= 1 and cfg.nnodes == 1:
        argv = [sys.executable, *worker]
        env = {}
        present = cuda_device_count()
        if gpus == 1 and present > 1:
            env["CUDA_VISIBLE_DEVICES"] = "0"
        return LaunchPlan(argv=argv, env=env, in_process=not env, notes=notes)
    if cfg.distributed.startswith("deepspeed") and not has_package("deepspeed"):
        message = f"distributed={cfg.distributed} needs DeepSpeed: pip install deepspeed (or --distributed fsdp)"
        if not dry_run:
            raise DependencyError(message)
        notes.append(message)
    accelerate_config = cfg.accelerate_config or train_dir() / "accelerate" / DISTRIBUTED[cfg.distributed]
    if not Path(accelerate_config).is_file():
        raise InputError(f"accelerate config not found: {accelerate_config}")
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
            "--num_processes", str(cfg.world_size), "--num_machines", str(cfg.nnodes)]
    if cfg.nnodes > 1:
        argv += ["--machine_rank", str(cfg.node_rank), "--main_process_ip", str(cfg.main_process_ip),
                 "--main_process_port", str(cfg.main_process_port)]
    if cfg.distributed.startswith("deepspeed") and cfg.accelerate_config is None:
        # DeepSpeed takes precision from its JSON ("auto" = the trainer's bf16); the path is made absolute here.
        stage = cfg.distributed.rsplit("zero", 1)[1]
        argv += ["--deepspeed_config_file", str(train_dir() / "deepspeed" / f"zero{stage}.json")]
    else:
        argv += ["--mixed_precision", "bf16" if cfg.bf16 else "no"]
    return LaunchPlan(argv=[*argv, *worker], notes=notes)


def run_sft(cfg: SftConfig, *, progress=None) -> TrainSummary:
    """Check, launch and wait; returns the summary the trainer wrote into the output folder."""
    return launch_trl(plan_sft(cfg), cfg, train_sft_worker, progress=progress)


def train_sft_worker(cfg: SftConfig, *, progress=None) -> TrainSummary:
    """The training itself (one process of a run); rank 0 saves the model and writes the summary."""
    import torch
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    cfg.resolve(devices=cuda_device_count)
    tokenizer = load_tokenizer(cfg.model)
    if not tokenizer.chat_template:
        raise InputError(f"{cfg.model} has no chat template: SFT needs an instruct model's tokenizer")
    train = load_sft_dataset(Path(cfg.train_file), max_samples=cfg.max_samples)
    evaluation = load_sft_dataset(Path(cfg.eval_file)) if cfg.eval_file else None
    model_kwargs = {"dtype": torch.bfloat16 if cfg.bf16 else torch.float32}
    if cfg.attn_implementation:
        model_kwargs["attn_implementation"] = cfg.attn_implementation
    args = TrlSFTConfig(
        **trainer_args(cfg),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        optim=cfg.optimizer,
        lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_length,
        completion_only_loss=True,
        bf16=bool(cfg.bf16),
        gradient_checkpointing=bool(cfg.gradient_checkpointing),
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if evaluation is not None else "no",
        eval_steps=cfg.eval_steps,
        dataset_num_proc=cfg.dataset_num_proc,
        model_init_kwargs=model_kwargs,
    )
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        targets = cfg.lora_target_modules
        peft_config = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, task_type="CAUSAL_LM",
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        )

    def build_trainer():
        trainer = SFTTrainer(model=cfg.model, args=args, train_dataset=train, eval_dataset=evaluation,
                             processing_class=tokenizer, peft_config=peft_config)
        _check_kept(len(train), len(trainer.train_dataset), cfg.max_length, progress)
        if progress:
            progress(f"training {len(train):,} examples: {trainer.args.max_steps if cfg.max_steps > 0 else 'all'} "
                     f"steps, batch {cfg.per_device_batch_size} x {cfg.gradient_accumulation_steps} accumulation x "
                     f"{cfg.world_size} device(s)")
        return trainer

    return train_and_save(cfg, tokenizer, build_trainer, command="sft", train_rows=len(train), lora=cfg.lora)


def _check_kept(given: int, kept: int, max_length: int, progress) -> None:
    """trl drops examples whose answer is cut off entirely by ``max_length``: say so, and stop if none is left."""
    if kept == 0:
        raise InputError(f"no example has answer tokens within max_length={max_length}: raise --max-length")
    if kept < given and progress:
        progress(f"left out {given - kept:,} of {given:,} examples whose answer starts after max_length={max_length}")


def _check_trl() -> None:
    for package in ("trl", "transformers", "datasets", "accelerate"):
        if not has_package(package):
            raise DependencyError(f"train sft needs {package}: pip install '.[train]' in the icdreason checkout")


def main(argv: list[str] | None = None) -> None:
    """Entry point of each launched process: ``python -m icdreason.training.sft --config train_config.yaml``."""
    parser = argparse.ArgumentParser(prog="python -m icdreason.training.sft")
    parser.add_argument("--config", required=True, type=Path, help="A resolved SFT config (YAML).")
    args = parser.parse_args(argv)
    train_sft_worker(SftConfig.load(args.config))


if __name__ == "__main__":
    main()
