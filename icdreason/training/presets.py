"""Training presets: the settings of the authors' training jobs as named layers under a run's YAML and flags.

Sources (DATEXIS/DeepICD-R1 at commit 80f64850ee6c9adeae1bced4f01912e3b195f026):

- ``train sft --preset deepicd-r1``: ``k8s/train/sft_train_job_7b.yaml`` (trl SFTTrainer through ``accelerate launch
  --use_fsdp --num_processes 1``).
- ``train grpo --preset deepicd-r1-7b``: ``k8s/train/grpo_train_job_7b.yaml``; ``--preset deepicd-r1-zero-32b``:
  ``k8s/train/grpo_train_job_32b.yaml`` (verl ``main_ppo``).

A preset supplies defaults: the YAML file (``--config``) and the flags are applied on top of it, and every value
remembers where it came from (``preset deepicd-r1`` in :meth:`~icdreason.settings.Settings.origins`). The batch
split is given as the job's per-device batch with the effective batch, so that another GPU count derives its own
gradient accumulation (``--gpus 4``: 8 x 1 x 4 = 32) instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UsageError
from ..settings import Settings

__all__ = ["GRPO_PRESETS", "SFT_PRESETS", "TrainingPreset", "get_training_preset", "load_with_preset"]

S = TypeVar("S", bound=Settings)


@dataclass(frozen=True)
class TrainingPreset:
    """Config values of one of the authors' jobs, with where each comes from and what differs."""

    name: str
    summary: str
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


_SFT_JOB = "k8s/train/sft_train_job_7b.yaml"
SFT_PRESETS: dict[str, TrainingPreset] = {
    "deepicd-r1": TrainingPreset(
        name="deepicd-r1",
        summary=f"the authors' SFT job ({_SFT_JOB} @ 80f6485)",
        values={
            "model": "Qwen/Qwen2.5-7B-Instruct",
            "learning_rate": 2e-5,
            "lr_scheduler": "cosine",
            "warmup_steps": 100,
            "weight_decay": 0.01,
            "effective_batch_size": 32,
            "per_device_batch_size": 8,
            "epochs": 1.0,
            "optimizer": "adamw_torch",
            "bf16": True,
            "gradient_checkpointing": True,
            "distributed": "fsdp",
            "gpus": 1,
            "logging_steps": 5,
            "seed": 42,
        },
        sources={
            "model": "--model_name Qwen/Qwen2.5-7B-Instruct",
            "learning_rate": "--learning_rate 2e-5",
            "lr_scheduler": "--lr_scheduler_type cosine",
            "warmup_steps": "--warmup_steps 100",
            "weight_decay": "--weight_decay 0.01",
            "effective_batch_size": "--per_device_train_batch_size 8 x --gradient_accumulation_steps 4 x 1 process",
            "per_device_batch_size": "--per_device_train_batch_size 8",
            "epochs": "--num_train_epochs 1",
            "optimizer": "--optim adamw_torch",
            "bf16": "--bf16 True (accelerate mixed_precision bf16)",
            "gradient_checkpointing": "--gradient_checkpointing True",
            "distributed": "accelerate launch --use_fsdp",
            "gpus": "--num_processes 1",
            "logging_steps": "--logging_steps 5",
            "seed": "TrainingArguments default 42",
        },
        notes=(
            "one process: their FSDP over one GPU shards nothing; icdreason trains one GPU in-process (FSDP applies "
            "from --gpus 2 on, the gradient accumulation then derived to keep 32 sequences per step)",
            "saving per epoch and wandb logging are not set: --set save_steps=N / --report-to wandb",
            "max_length stays 3072 (their job leaves TRL's default)",
        ),
    ),
}

_GRPO_7B = "k8s/train/grpo_train_job_7b.yaml"
_GRPO_32B = "k8s/train/grpo_train_job_32b.yaml"
_GRPO_SCHEDULE = {"backend": "verl", "epochs": 1, "save_freq": 50, "test_freq": 100, "val_before_train": False,
                  "reward_preset": "deepicd-r1"}
GRPO_PRESETS: dict[str, TrainingPreset] = {
    "deepicd-r1-7b": TrainingPreset(
        name="deepicd-r1-7b",
        summary=f"the authors' 7B GRPO job ({_GRPO_7B} @ 80f6485); pass your SFT output as --model",
        values={**_GRPO_SCHEDULE, "gpus": 4, "nnodes": 1, "micro_batch_size_per_gpu": 16},
        sources={"epochs": "trainer.total_epochs=1", "save_freq": "trainer.save_freq=50",
                 "test_freq": "trainer.test_freq=100", "val_before_train": "trainer.val_before_train=False",
                 "reward_preset": "the job's reward function and constants", "gpus": "trainer.n_gpus_per_node=4", "nnodes": "trainer.nnodes=1",
                 "micro_batch_size_per_gpu": "ppo_micro_batch_size_per_gpu=16"},
        notes=("their policy is an SFT checkpoint that is not published: --model runs/sft",),
    ),
    "deepicd-r1-zero-32b": TrainingPreset(
        name="deepicd-r1-zero-32b",
        summary=f"the authors' 32B GRPO job ({_GRPO_32B} @ 80f6485), from the instruct model (R1-zero)",
        values={**_GRPO_SCHEDULE, "model": "Qwen/Qwen2.5-32B-Instruct", "gpus": 8, "nnodes": 1,
                "micro_batch_size_per_gpu": 4},
        sources={"model": "actor_rollout_ref.model.path=Qwen/Qwen2.5-32B-Instruct",
                 "gpus": "trainer.n_gpus_per_node=8", "micro_batch_size_per_gpu": "micro batch sizes 4",
                 "epochs": "trainer.total_epochs=1", "save_freq": "trainer.save_freq=50",
                 "test_freq": "trainer.test_freq=100", "val_before_train": "trainer.val_before_train=False",
                 "reward_preset": "the job's reward function and constants", "nnodes": "trainer.nnodes=1"},
    ),
}


def get_training_preset(presets: Mapping[str, TrainingPreset], name: str, command: str) -> TrainingPreset:
    """The preset ``name`` of ``presets``; an unknown name is a one-line usage error listing the known ones."""
    try:
        return presets[name]
    except KeyError:
        raise UsageError(f"unknown {command} preset {name!r} (known: {', '.join(presets)})") from None


def load_with_preset(cls: type[S], preset: TrainingPreset | None, path: str | Path | None,
                     overrides: Mapping[str, Any] | None) -> S:
    """``cls`` from the preset's values, then the YAML file ``path``, then ``overrides`` (None values ignored),
    applied together (so derived values such as the batch split follow from all of them); each value's origin is
    the layer that set it."""
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    if preset is not None:
        values.update(preset.values)
        labels.update(dict.fromkeys(preset.values, f"preset {preset.name}"))
    if path is not None:
        from_file = cls.read_yaml(path)
        values.update(from_file)
        labels.update(dict.fromkeys(from_file, f"YAML {Path(path)}"))
    for key, value in (overrides or {}).items():
        if value is not None:
            name = key.replace("-", "_")
            values[name] = value
            labels[name] = "override"
    source = str(path) if path is not None else f"preset {preset.name}" if preset is not None else "the overrides"
    return cls.from_dict(values, source=source, origin=labels)
