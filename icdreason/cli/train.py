"""``icdreason train``: supervised fine-tuning (trl) and GRPO (verl or trl) with the DeepICD-R1 settings."""

# No `from __future__ import annotations` here: typer would compile every Annotated[...] string again each time it
# builds the command (several times per `icdreason --help`); evaluated once at import they cost nothing later.

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..settings import parse_assignments
from ..training.grpo_config import GrpoConfig
from ..training.sft_config import SftConfig
from .common import console, disclaimer, err_console, help_config_table, markup, say, setting_flag

app = typer.Typer(
    help="Train reasoning models: `sft` on reasoning traces (trl), `grpo` with the icdreason rewards (verl or trl).",
    no_args_is_help=True,
)

# Options that are not config fields. The config fields' flags take their help from the field (setting_flag).
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="A run config (YAML) whose keys are "
                                                       "the config fields (see --help-config); flags override it.")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Set any config field "
                                                        "(repeatable), e.g. --set weight_decay=0.01.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check the inputs, print the resolved config and the "
                                            "exact launch command, and start nothing.")]
HelpConfigOption = Annotated[bool, typer.Option("--help-config", help="List every config field with its type, "
                                                "default and help, then exit.")]
SftPresetOption = Annotated[Optional[str], typer.Option("--preset", help="deepicd-r1: the authors' SFT job (lr 2e-5 "
                                                        "cosine, 100 warm-up steps, weight decay 0.01, 8 x 4 "
                                                        "sequences on 1 GPU, 1 epoch, bf16, FSDP). --config and flags "
                                                        "override it.")]
GrpoPresetOption = Annotated[Optional[str], typer.Option("--preset", help="deepicd-r1-7b or deepicd-r1-zero-32b: the "
                                                         "authors' GRPO jobs (verl; save every 50 steps, validate "
                                                         "every 100; the 32B job's model, 8 GPUs, micro-batch 4). "
                                                         "--config and flags override it.")]


def _load(cls, config: Path | None, flags: dict[str, Any], sets: list[str] | None, preset: str | None = None):
    from ..training.presets import GRPO_PRESETS, SFT_PRESETS, get_training_preset, load_with_preset

    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides.update(parse_assignments(sets))
    if preset is None:
        return cls.load(config, overrides)
    presets = SFT_PRESETS if cls is SftConfig else GRPO_PRESETS
    chosen = get_training_preset(presets, preset, cls.help_command)
    for note in chosen.notes:
        say(f"preset {chosen.name}: {note}")
    return load_with_preset(cls, chosen, config, overrides)


def _help_config(cls) -> None:
    console.print(help_config_table(cls, f"{cls.help_command}: config fields"))


def _print_plan(cfg, plan, extra: dict[str, Any] | None = None) -> None:
    """The dry-run report: one YAML document on stdout (config, launch), notes on stderr."""
    import yaml

    doc: dict[str, Any] = {"config": cfg.to_dict()}
    doc.update(extra or {})
    doc["launch"] = {"command": plan.shell(), "argv": plan.argv, "env": plan.env, "in_process": plan.in_process}
    doc["notes"] = plan.notes
    console.print(yaml.safe_dump(doc, sort_keys=False, width=1_000_000), markup=False, soft_wrap=True)
    for note in plan.notes:
        err_console.print(f"[yellow]note:[/yellow] {markup(note)}", soft_wrap=True)
    say("dry run: nothing was started")


def _print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"train {summary.command} ({summary.backend}): done", show_header=False)
    table.add_row("model", summary.model_dir)
    table.add_row("steps", f"{summary.steps:,}")
    table.add_row("wall time", _duration(summary.wall_seconds))
    table.add_row("training rows", f"{summary.train_rows:,}")
    if summary.first_loss is not None:
        table.add_row("loss", f"{summary.first_loss:.4f} (first log) -> {summary.final_loss:.4f} (last log)")
    for key, value in sorted(summary.metrics.items()):
        if key.startswith("rewards/") and key.endswith("/mean") or key == "reward":
            table.add_row(key, f"{value:.4f}")
    if summary.log_dir:
        table.add_row("TensorBoard", f"tensorboard --logdir {summary.log_dir}")
    if summary.checkpoints_dir:
        table.add_row("checkpoints", summary.checkpoints_dir)
    console.print(table)
    console.print(f"next: icdreason predict --engine transformers --model {summary.model_dir} NOTES", markup=False,
                  soft_wrap=True)
    disclaimer()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


@app.command("sft")
def sft(
    config: ConfigOption = None,
    model: Annotated[Optional[str], setting_flag(SftConfig, "model", "--model", "-m")] = None,
    train: Annotated[Optional[Path], setting_flag(SftConfig, "train_file", "--train")] = None,
    eval_file: Annotated[Optional[Path], setting_flag(SftConfig, "eval_file", "--eval")] = None,
    output_dir: Annotated[Optional[Path], setting_flag(SftConfig, "output_dir", "--output-dir", "-o")] = None,
    epochs: Annotated[Optional[float], setting_flag(SftConfig, "epochs")] = None,
    max_steps: Annotated[Optional[int], setting_flag(SftConfig, "max_steps")] = None,
    batch_size: Annotated[Optional[int], setting_flag(SftConfig, "effective_batch_size", "--batch-size")] = None,
    per_device_batch_size: Annotated[Optional[int], setting_flag(SftConfig, "per_device_batch_size")] = None,
    lr: Annotated[Optional[float], setting_flag(SftConfig, "learning_rate", "--lr", "--learning-rate")] = None,
    warmup_steps: Annotated[Optional[int], setting_flag(SftConfig, "warmup_steps")] = None,
    max_length: Annotated[Optional[int], setting_flag(SftConfig, "max_length")] = None,
    gpus: Annotated[Optional[int], setting_flag(SftConfig, "gpus")] = None,
    nnodes: Annotated[Optional[int], setting_flag(SftConfig, "nnodes")] = None,
    node_rank: Annotated[Optional[int], setting_flag(SftConfig, "node_rank")] = None,
    main_process_ip: Annotated[Optional[str], setting_flag(SftConfig, "main_process_ip")] = None,
    main_process_port: Annotated[Optional[int], setting_flag(SftConfig, "main_process_port")] = None,
    distributed: Annotated[Optional[str], setting_flag(SftConfig, "distributed")] = None,
    lora: Annotated[Optional[bool], setting_flag(SftConfig, "lora", "--lora/--full")] = None,
    report_to: Annotated[Optional[str], setting_flag(SftConfig, "report_to")] = None,
    resume_from: Annotated[Optional[str], setting_flag(SftConfig, "resume_from")] = None,
    overwrite: Annotated[bool, setting_flag(SftConfig, "overwrite")] = False,
    max_samples: Annotated[Optional[int], setting_flag(SftConfig, "max_samples")] = None,
    sets: SetOption = None,
    preset: SftPresetOption = None,
    dry_run: DryRunOption = False,
    help_config: HelpConfigOption = False,
) -> None:
    """Supervised fine-tuning on reasoning traces (trl SFTTrainer, loss on the answer only).

    Paper defaults: 1 epoch, effective batch 32, learning rate 2e-5, AdamW, 100 warm-up steps; bf16 and gradient
    checkpointing on GPUs. Several GPUs train through `accelerate launch` (FSDP by default); several machines run the
    same command with --nnodes, their own --node-rank and the rank-0 machine's --main-process-ip.
    """
    from ..training.sft import plan_sft, run_sft

    if help_config:
        _help_config(SftConfig)
        return
    flags = dict(model=model, train_file=train, eval_file=eval_file, output_dir=output_dir, epochs=epochs,
                 max_steps=max_steps, effective_batch_size=batch_size, per_device_batch_size=per_device_batch_size,
                 learning_rate=lr, warmup_steps=warmup_steps, max_length=max_length, gpus=gpus, nnodes=nnodes,
                 node_rank=node_rank, main_process_ip=main_process_ip, main_process_port=main_process_port,
                 distributed=distributed, lora=lora, report_to=report_to, resume_from=resume_from,
                 overwrite=overwrite or None, max_samples=max_samples)
    cfg = _load(SftConfig, config, flags, sets, preset)
    if dry_run:
        _print_plan(cfg, plan_sft(cfg, dry_run=True))
        return
    _print_summary(run_sft(cfg, progress=say))


@app.command("grpo")
def grpo(
    config: ConfigOption = None,
    backend: Annotated[Optional[str], setting_flag(GrpoConfig, "backend")] = None,
    model: Annotated[Optional[str], setting_flag(GrpoConfig, "model", "--model", "-m")] = None,
    train: Annotated[Optional[Path], setting_flag(GrpoConfig, "train_file", "--train")] = None,
    val: Annotated[Optional[Path], setting_flag(GrpoConfig, "val_file", "--val")] = None,
    output_dir: Annotated[Optional[Path], setting_flag(GrpoConfig, "output_dir", "--output-dir", "-o")] = None,
    reward_preset: Annotated[Optional[str], setting_flag(GrpoConfig, "reward_preset")] = None,
    reward: Annotated[Optional[str], setting_flag(GrpoConfig, "rewards", "--reward")] = None,
    no_format: Annotated[bool, typer.Option("--no-format", help="Ablation: drop the format reward.")] = False,
    no_outcome: Annotated[bool, typer.Option("--no-outcome", help="Ablation: drop the outcome reward.")] = False,
    no_judge: Annotated[bool, typer.Option("--no-judge", help="Ablation: drop the LLM-judge reward.")] = False,
    judge_url: Annotated[Optional[str], setting_flag(GrpoConfig, "judge_url")] = None,
    judge_model: Annotated[Optional[str], setting_flag(GrpoConfig, "judge_model")] = None,
    judge_key_env: Annotated[Optional[str], setting_flag(GrpoConfig, "judge_key_env")] = None,
    judge_prompt: Annotated[Optional[Path], setting_flag(GrpoConfig, "judge_prompt")] = None,
    reward_config: Annotated[Optional[Path], setting_flag(GrpoConfig, "reward_config")] = None,
    epochs: Annotated[Optional[int], setting_flag(GrpoConfig, "epochs")] = None,
    max_steps: Annotated[Optional[int], setting_flag(GrpoConfig, "max_steps")] = None,
    train_batch_size: Annotated[Optional[int], setting_flag(GrpoConfig, "train_batch_size")] = None,
    rollout_n: Annotated[Optional[int], setting_flag(GrpoConfig, "rollout_n")] = None,
    lr: Annotated[Optional[float], setting_flag(GrpoConfig, "learning_rate", "--lr", "--learning-rate")] = None,
    max_prompt_length: Annotated[Optional[int], setting_flag(GrpoConfig, "max_prompt_length")] = None,
    max_response_length: Annotated[Optional[int], setting_flag(GrpoConfig, "max_response_length")] = None,
    gpus: Annotated[Optional[int], setting_flag(GrpoConfig, "gpus")] = None,
    nnodes: Annotated[Optional[int], setting_flag(GrpoConfig, "nnodes")] = None,
    ray_address: Annotated[Optional[str], setting_flag(GrpoConfig, "ray_address")] = None,
    report_to: Annotated[Optional[str], setting_flag(GrpoConfig, "report_to")] = None,
    resume_from: Annotated[Optional[str], setting_flag(GrpoConfig, "resume_from")] = None,
    overwrite: Annotated[bool, setting_flag(GrpoConfig, "overwrite")] = False,
    max_samples: Annotated[Optional[int], setting_flag(GrpoConfig, "max_samples")] = None,
    verl_override: Annotated[Optional[list[str]], setting_flag(GrpoConfig, "verl_overrides", "--verl-override",
                                                               metavar="KEY=VALUE")] = None,
    sets: SetOption = None,
    preset: GrpoPresetOption = None,
    dry_run: DryRunOption = False,
    help_config: HelpConfigOption = False,
) -> None:
    """GRPO with the icdreason rewards: verl on GPU nodes (model card settings), trl on one machine.

    Model card defaults: 64 prompts per step, 8 responses each at temperature 0.9, learning rate 1e-6 with 80 warm-up
    steps, 1 epoch, 2048/1024 prompt/response tokens, KL loss off, entropy coefficient 0.001, 4 GPUs on 1 node.
    """
    from ..training.grpo import plan_grpo, run_grpo

    if help_config:
        _help_config(GrpoConfig)
        return
    flags: dict[str, Any] = dict(
        backend=backend, model=model, train_file=train, val_file=val, output_dir=output_dir, rewards=reward,
        reward_preset=reward_preset, judge_url=judge_url, judge_model=judge_model, judge_key_env=judge_key_env,
        judge_prompt=judge_prompt, reward_config=reward_config,
        epochs=epochs, max_steps=max_steps, train_batch_size=train_batch_size, rollout_n=rollout_n,
        learning_rate=lr, max_prompt_length=max_prompt_length, max_response_length=max_response_length,
        gpus=gpus, nnodes=nnodes, ray_address=ray_address, report_to=report_to, resume_from=resume_from,
        overwrite=overwrite or None, max_samples=max_samples, verl_overrides=verl_override or None,
    )
    if train_batch_size is not None:
        flags["ppo_mini_batch_size"] = train_batch_size  # one update per step, as in the model card
    cfg = _load(GrpoConfig, config, flags, sets, preset)
    cfg.apply_ablations(no_format=no_format, no_outcome=no_outcome, no_judge=no_judge)
    if dry_run:
        plan, extra = plan_grpo(cfg, dry_run=True)
        _print_plan(cfg, plan, extra)
        return
    _print_summary(run_grpo(cfg, progress=say))
