"""What the trl runs (SFT and GRPO) share: output-folder rules, resume points, loggers, the tokenizer, the
trainer arguments both take alike, the training loop around the trainer and the final save."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import InputError, UsageError
from .export import SUMMARY_FILE, TrainSummary, finalize_model_dir

if TYPE_CHECKING:
    from .grpo_config import GrpoConfig
    from .sft_config import SftConfig

__all__ = [
    "CHECKPOINTS",
    "LOGS",
    "check_output_dir",
    "last_logged",
    "load_tokenizer",
    "resolve_resume",
    "save_final_model",
    "summary_from_trainer",
    "tensorboard_dir",
    "tensorboard_env",
    "train_and_save",
    "trainer_args",
]

CHECKPOINTS = "checkpoints"  # trainer checkpoints inside the output folder
LOGS = "logs"  # TensorBoard event files inside the output folder

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_VERL_CHECKPOINT = re.compile(r"^global_step_(\d+)$")


def _checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))  # type: ignore[union-attr]


def check_output_dir(output_dir: Path, *, resume_from: str | None, overwrite: bool) -> None:
    """Refuse to train over an earlier run unless asked to resume it or to overwrite it."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} is a file: pass another --output-dir")
    if resume_from or overwrite:
        return
    ckpts = out / CHECKPOINTS
    verl_ckpts = ckpts.is_dir() and any(_VERL_CHECKPOINT.match(p.name) for p in ckpts.iterdir())
    earlier = _checkpoints(ckpts) or verl_ckpts or (out / SUMMARY_FILE).is_file()
    if earlier:
        raise UsageError(f"{out} holds an earlier run: pass --resume-from latest to continue it, --overwrite to "
                         f"start afresh, or another --output-dir")


def resolve_resume(output_dir: Path, resume_from: str | None) -> str | None:
    """``latest`` -> the newest checkpoint in ``output_dir/checkpoints``; a path must be a checkpoint folder."""
    if not resume_from:
        return None
    if resume_from == "latest":
        found = _checkpoints(Path(output_dir) / CHECKPOINTS)
        if not found:
            raise InputError(f"--resume-from latest: no checkpoint-N folder in {Path(output_dir) / CHECKPOINTS}")
        return str(found[-1])
    path = Path(resume_from).expanduser()
    if not (path.is_dir() and (path / "trainer_state.json").is_file()):
        raise InputError(f"--resume-from {path}: not a trainer checkpoint folder (no trainer_state.json); pass a "
                         f"checkpoint-N folder or 'latest'")
    return str(path)


def tensorboard_dir(output_dir: Path) -> Path:
    return Path(output_dir) / LOGS


@contextlib.contextmanager
def tensorboard_env(output_dir: Path, report_to: list[str]) -> Iterator[None]:
    """Point transformers' TensorBoard callback at ``output_dir/logs`` for the duration of a run."""
    if "tensorboard" not in report_to:
        yield
        return
    old = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(output_dir))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = old


def last_logged(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last value of every metric the trainer logged (train_* totals included)."""
    out: dict[str, Any] = {}
    for entry in history:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                out[key] = value
    return out


def save_final_model(trainer, output_dir: Path, tokenizer, *, lora: bool, base_model: str) -> None:
    """Save the trained weights so that ``output_dir`` loads with ``from_pretrained``; LoRA adapters are merged."""
    out = Path(output_dir)
    if not lora:
        trainer.save_model(str(out))
    else:
        trainer.save_model(str(out / "adapter"))
    if not trainer.is_world_process_zero():
        return
    if lora:
        _merge_adapter(base_model, out / "adapter", out)
    finalize_model_dir(out, tokenizer, getattr(trainer.model, "config", None))


def _merge_adapter(base_model: str, adapter: Path, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.bfloat16 if torch.cuda.is_available()
                                                else torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))


def summary_from_trainer(trainer, *, command: str, output_dir: Path, base_model: str, train_rows: int,
                         seconds: float, resumed_from: str | None, report_to: list[str]) -> TrainSummary:
    """The run's summary from the trainer's state and log history."""
    history = trainer.state.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    return TrainSummary(
        command=command,
        backend="trl",
        model_dir=str(Path(output_dir).resolve()),
        steps=int(trainer.state.global_step),
        wall_seconds=round(seconds, 2),
        base_model=base_model,
        train_rows=train_rows,
        first_loss=losses[0] if losses else None,
        final_loss=losses[-1] if losses else None,
        log_dir=str(tensorboard_dir(output_dir).resolve()) if "tensorboard" in report_to else None,
        checkpoints_dir=str((Path(output_dir) / CHECKPOINTS).resolve()),
        resumed_from=resumed_from,
        metrics=last_logged(history),
    )


def load_tokenizer(model: str):
    """The model's tokenizer, padding with the end-of-sequence token where it names no padding token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def trainer_args(cfg: SftConfig | GrpoConfig) -> dict[str, Any]:
    """The trl trainer arguments that SFT and GRPO take from their configs alike (checkpoints, logging, device)."""
    return dict(
        output_dir=str(Path(cfg.output_dir) / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        seed=cfg.seed,
        report_to=[r for r in cfg.report_to if r != "none"] or "none",
        run_name=cfg.run_name,
        use_cpu=(cfg.gpus or 0) == 0,
        disable_tqdm=True,
    )


def train_and_save(cfg: SftConfig | GrpoConfig, tokenizer, build_trainer: Callable[[], Any], *, command: str,
                   train_rows: int, lora: bool = False) -> TrainSummary:
    """Build the trainer and train it (from ``cfg.resume_from``, TensorBoard writing to ``logs/``), then save the
    final model with the tokenizer's own padding side and, on rank 0, the run's summary; returns the summary."""
    out = Path(cfg.output_dir)
    padding_side = tokenizer.padding_side  # trl pads on the right for training; the saved model keeps the original
    resume = resolve_resume(out, cfg.resume_from)
    with tensorboard_env(out, cfg.report_to):
        trainer = build_trainer()
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=resume)
        seconds = time.monotonic() - started
    tokenizer.padding_side = padding_side
    save_final_model(trainer, out, tokenizer, lora=lora, base_model=cfg.model)
    summary = summary_from_trainer(trainer, command=command, output_dir=out, base_model=cfg.model,
                                   train_rows=train_rows, seconds=seconds, resumed_from=resume,
                                   report_to=cfg.report_to)
    if trainer.is_world_process_zero():
        summary.save(out)
    return summary
