"""``icdreason train``: supervised fine-tuning (trl) and GRPO (verl or trl) with the DeepICD-R1 settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import console, disclaimer, err_console, say

app = typer.Typer(
    help="Train reasoning models: `sft` on reasoning traces (trl), `grpo` with the icdreason rewards (verl or trl).",
    no_args_is_help=True,
)

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="A run config (YAML) whose keys are "
                                                       "the config fields (see --help-config); flags override it.")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Set any config field "
                                                        "(repeatable), e.g. --set weight_decay=0.01.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check the inputs, print the resolved config and the "
                                            "exact launch command, and start nothing.")]
HelpConfigOption = Annotated[bool, typer.Option("--help-config", help="List every config field with its default "
                                                "and help, then exit.")]
ModelOption = Annotated[Optional[str], typer.Option("--model", "-m", help="Model to start from: a directory or a "
                                                    "hub id.")]
OutOption = Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Output folder: the trained model "
                                                   "(loadable by `icdreason predict --model`), checkpoints/, logs/.")]
GpusOption = Annotated[Optional[int], typer.Option("--gpus", help="GPUs on this node (0 = CPU).")]
EpochsOption = Annotated[Optional[float], typer.Option("--epochs", help="Training epochs.")]
StepsOption = Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many steps.")]
LrOption = Annotated[Optional[float], typer.Option("--lr", "--learning-rate", help="Peak learning rate.")]
ReportOption = Annotated[Optional[str], typer.Option("--report-to", help="Loggers: tensorboard (default), wandb, "
                                                     "none; comma list.")]
ResumeOption = Annotated[Optional[str], typer.Option("--resume-from", help="'latest' or a checkpoint folder.")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Start afresh in an output folder that holds an "
                                               "earlier run.")]
SamplesOption = Annotated[Optional[int], typer.Option("--max-samples", help="Use the first N rows only.")]


def _load(cls, config: Path | None, flags: dict[str, Any], sets: list[str] | None):
    from ..training.config_base import parse_assignments

    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides.update(parse_assignments(sets))
    return cls.load(config, overrides)


def _help_config(cls) -> None:
    from rich.table import Table

    table = Table(title=f"icdreason train {cls.command}: config fields", show_lines=False)
    for column in ("field", "default", "help"):
        table.add_column(column, overflow="fold")
    for name, default, text in cls.describe():
        table.add_row(name, default, text)
    console.print(table)


def _print_plan(cfg, plan, extra: dict[str, Any] | None = None) -> None:
    """The dry-run report: one YAML document on stdout (config, launch), notes on stderr."""
    import yaml

    doc: dict[str, Any] = {"config": cfg.to_dict()}
    doc.update(extra or {})
    doc["launch"] = {"command": plan.shell(), "argv": plan.argv, "env": plan.env, "in_process": plan.in_process}
    doc["notes"] = plan.notes
    console.print(yaml.safe_dump(doc, sort_keys=False, width=1_000_000), markup=False, soft_wrap=True)
    for note in plan.notes:
        err_console.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)
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
    model: ModelOption = None,
    train: Annotated[Optional[Path], typer.Option("--train", help="SFT Parquet (`messages` column), as "
                                                  "`icdreason distill` writes it.")] = None,
    eval_file: Annotated[Optional[Path], typer.Option("--eval", help="SFT Parquet for the evaluation loss.")] = None,
    output_dir: OutOption = None,
    epochs: EpochsOption = None,
    max_steps: StepsOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Effective batch: per-device batch x "
                                                      "gradient accumulation x GPUs (paper: 32).")] = None,
    per_device_batch_size: Annotated[Optional[int], typer.Option("--per-device-batch-size", help="Sequences per "
                                                                 "GPU per step (default: derived).")] = None,
    lr: LrOption = None,
    warmup_steps: Annotated[Optional[int], typer.Option("--warmup-steps", help="Linear warm-up steps (paper: "
                                                        "100).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Longest tokenized example.")] = None,
    gpus: GpusOption = None,
    distributed: Annotated[Optional[str], typer.Option("--distributed", help="Multi-GPU strategy: fsdp, ddp, "
                                                       "deepspeed-zero2, deepspeed-zero3.")] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora/--full", help="Train a LoRA adapter (merged into the "
                                                 "saved model) or all weights (default).")] = None,
    report_to: ReportOption = None,
    resume_from: ResumeOption = None,
    overwrite: OverwriteOption = False,
    max_samples: SamplesOption = None,
    sets: SetOption = None,
    dry_run: DryRunOption = False,
    help_config: HelpConfigOption = False,
) -> None:
    """Supervised fine-tuning on reasoning traces (trl SFTTrainer, loss on the answer only).

    Paper defaults: 1 epoch, effective batch 32, learning rate 2e-5, AdamW, 100 warm-up steps; bf16 and gradient
    checkpointing on GPUs. Several GPUs train through `accelerate launch` (FSDP by default).
    """
    from ..training.sft import plan_sft, run_sft
    from ..training.sft_config import SftConfig

    if help_config:
        _help_config(SftConfig)
        return
    flags = dict(model=model, train_file=train, eval_file=eval_file, output_dir=output_dir, epochs=epochs,
                 max_steps=max_steps, effective_batch_size=batch_size, per_device_batch_size=per_device_batch_size,
                 learning_rate=lr, warmup_steps=warmup_steps, max_length=max_length, gpus=gpus,
                 distributed=distributed, lora=lora, report_to=report_to, resume_from=resume_from,
                 overwrite=overwrite or None, max_samples=max_samples)
    cfg = _load(SftConfig, config, flags, sets)
    if dry_run:
        _print_plan(cfg, plan_sft(cfg, dry_run=True))
        return
    _print_summary(run_sft(cfg, progress=say))


@app.command("grpo")
def grpo(
    config: ConfigOption = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="verl (GPU nodes; default where CUDA is "
                                                   "present) or trl (one machine, CPU smoke tests).")] = None,
    model: ModelOption = None,
    train: Annotated[Optional[Path], typer.Option("--train", help="RL Parquet in verl's layout (`icdreason data "
                                                  "prepare`).")] = None,
    val: Annotated[Optional[Path], typer.Option("--val", help="Validation Parquet (verl validates every "
                                                "test_freq steps).")] = None,
    output_dir: OutOption = None,
    reward_preset: Annotated[Optional[str], typer.Option("--reward-preset", help="Reward preset: deepicd-r1 "
                                                         "(default, the paper's GRPO jobs), icdreason, "
                                                         "authors-readme (`icdreason reward settings`).")] = None,
    reward: Annotated[Optional[str], typer.Option("--reward", help="Reward components, comma list of format, "
                                                  "outcome, length, trace, judge (default: the preset's; its "
                                                  "judge needs --judge-url).")] = None,
    no_format: Annotated[bool, typer.Option("--no-format", help="Ablation: drop the format reward.")] = False,
    no_outcome: Annotated[bool, typer.Option("--no-outcome", help="Ablation: drop the outcome reward.")] = False,
    no_judge: Annotated[bool, typer.Option("--no-judge", help="Ablation: drop the LLM-judge reward.")] = False,
    judge_url: Annotated[Optional[str], typer.Option("--judge-url", help="OpenAI-compatible base URL of the judge "
                                                     "(e.g. http://judge:8000/v1).")] = None,
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="Model name served by the "
                                                       "judge.")] = None,
    judge_key_env: Annotated[Optional[str], typer.Option("--judge-key-env", help="Environment variable with the "
                                                         "judge's API key.")] = None,
    judge_prompt: Annotated[Optional[Path], typer.Option("--judge-prompt", help="Judge prompt JSON {SYSTEM, USER} "
                                                         "(the authors' files load as they are; default: "
                                                         "icdreason's own prompt).")] = None,
    reward_config: Annotated[Optional[Path], typer.Option("--reward-config", help="YAML of further reward "
                                                          "settings (see `icdreason reward`).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Passes over the prompts (model card: 1).")] = None,
    max_steps: StepsOption = None,
    train_batch_size: Annotated[Optional[int], typer.Option("--train-batch-size", help="Prompts per step (model "
                                                            "card: 64).")] = None,
    rollout_n: Annotated[Optional[int], typer.Option("--rollout-n", help="Responses per prompt (model card: "
                                                     "8).")] = None,
    lr: LrOption = None,
    max_prompt_length: Annotated[Optional[int], typer.Option("--max-prompt-length", help="Model card: "
                                                             "2048.")] = None,
    max_response_length: Annotated[Optional[int], typer.Option("--max-response-length", help="Model card: "
                                                               "1024.")] = None,
    gpus: Annotated[Optional[int], typer.Option("--gpus", help="GPUs per node (verl default 4).")] = None,
    nnodes: Annotated[Optional[int], typer.Option("--nnodes", help="Nodes in the Ray cluster (verl).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Running Ray cluster to join, "
                                                       "HEAD_IP:6379 (verl multi-node).")] = None,
    report_to: ReportOption = None,
    resume_from: ResumeOption = None,
    overwrite: OverwriteOption = False,
    max_samples: SamplesOption = None,
    verl_override: Annotated[Optional[list[str]], typer.Option("--verl-override", metavar="KEY=VALUE",
                                                               help="Extra Hydra override for verl (repeatable), "
                                                               "checked against verl's config.")] = None,
    sets: SetOption = None,
    dry_run: DryRunOption = False,
    help_config: HelpConfigOption = False,
) -> None:
    """GRPO with the icdreason rewards: verl on GPU nodes (model card settings), trl on one machine.

    Model card defaults: 64 prompts per step, 8 responses each at temperature 0.9, learning rate 1e-6 with 80 warm-up
    steps, 1 epoch, 2048/1024 prompt/response tokens, KL loss off, entropy coefficient 0.001, 4 GPUs on 1 node.
    """
    from ..training.grpo import plan_grpo, run_grpo
    from ..training.grpo_config import GrpoConfig

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
    cfg = _load(GrpoConfig, config, flags, sets)
    cfg.apply_ablations(no_format=no_format, no_outcome=no_outcome, no_judge=no_judge)
    if dry_run:
        plan, extra = plan_grpo(cfg, dry_run=True)
        _print_plan(cfg, plan, extra)
        return
    _print_summary(run_grpo(cfg, progress=say))
