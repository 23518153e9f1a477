"""Settings of ``icdreason train sft``. Defaults are the paper's (section 4, "SFT") unless the help says otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import UsageError
from ..settings import Settings, option

__all__ = ["DISTRIBUTED", "SftConfig"]

#: Multi-GPU strategies and the accelerate config in ``train/accelerate/`` that each one uses.
DISTRIBUTED = {
    "fsdp": "fsdp.yaml",
    "ddp": "multi_gpu.yaml",
    "deepspeed-zero2": "deepspeed_zero2.yaml",
    "deepspeed-zero3": "deepspeed_zero3.yaml",
}


@dataclass
class SftConfig(Settings):
    """Supervised fine-tuning on reasoning traces with trl's SFTTrainer (loss on the assistant's answer only).

    The GPU count defaults to this machine's CUDA devices: :meth:`resolve` fills it in (the launcher calls it), and
    then derives the batch split, bf16 and gradient checkpointing; with ``gpus`` given they are derived at once.
    """

    help_command: ClassVar[str] = "icdreason train sft"

    model: str = option("Qwen/Qwen2.5-7B-Instruct", "Base model: a local directory or a hub id (the 7B model "
                        "card's base model by default).")
    train_file: Path | None = option(None, "SFT Parquet (a `messages` column; `icdreason distill` writes it). "
                                     "Required.")
    eval_file: Path | None = option(None, "Optional SFT Parquet for evaluation loss every eval_steps.")
    output_dir: Path = option(Path("runs/sft"), "Where the trained model, checkpoints/, logs/ and the summary go. "
                              "The folder is a model `icdreason predict --model DIR` accepts.")
    epochs: float = option(1.0, "Training epochs (paper: 1).")
    max_steps: int = option(-1, "Stop after this many optimizer steps (-1: run the epochs).")
    effective_batch_size: int = option(32, "Sequences per optimizer step = per-device batch x gradient "
                                       "accumulation x GPUs of all machines (paper: 32).")
    per_device_batch_size: int | None = option(None, "Sequences per GPU per forward pass (default: the largest "
                                               "divisor of effective_batch_size / GPUs that is at most "
                                               "max_per_device_batch_size).")
    max_per_device_batch_size: int = option(4, "Upper bound for the derived per-device batch (memory).")
    gradient_accumulation_steps: int | None = option(None, "Derived from the batch sizes and the GPU count unless "
                                                     "given (then it must multiply out to effective_batch_size).")
    learning_rate: float = option(2e-5, "Peak learning rate (paper: 2e-5).")
    optimizer: str = option("adamw_torch", "transformers optimizer name (paper: AdamW).")
    lr_scheduler: str = option("linear", "Learning-rate schedule after warm-up (linear decay to 0).")
    warmup_steps: int = option(100, "Linear warm-up steps (paper: 100).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm.")
    max_length: int = option(3072, "Longest tokenized example (prompt + answer); longer ones are truncated. "
                             "Default = GRPO's 2048 prompt + 1024 response tokens.")
    gpus: int | None = option(None, "GPUs on this node (default: 4 when CUDA shows 4 or more, else all CUDA "
                              "devices, else 0 = CPU). More than 1 launches `accelerate launch`.")
    nnodes: int = option(1, "Machines training together (accelerate multi-node). Run the same command on each one "
                         "with its own node_rank; gpus is per machine.")
    node_rank: int = option(0, "This machine's rank among the nnodes (0 = the machine of main_process_ip).")
    main_process_ip: str | None = option(None, "Address of the rank-0 machine, reachable from the others (needed "
                                         "with nnodes > 1).")
    main_process_port: int = option(29500, "Port on the rank-0 machine for the rendezvous.")
    distributed: str = option("fsdp", "Multi-GPU strategy: fsdp, ddp, deepspeed-zero2, deepspeed-zero3 (the "
                              "last two need `pip install deepspeed`). Configs live in train/accelerate/.")
    accelerate_config: Path | None = option(None, "Your own accelerate config file (overrides `distributed`).")
    bf16: bool | None = option(None, "bfloat16 mixed precision (default: on with GPUs, off on the CPU).")
    gradient_checkpointing: bool | None = option(None, "Recompute activations to save memory (default: on with "
                                                 "GPUs, off on the CPU).")
    lora: bool = option(False, "Train a LoRA adapter (peft) instead of all weights; it is merged into the saved "
                        "model so predict loads it like any other (the adapter is kept in adapter/).")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target_modules: str = option("all-linear", "Modules LoRA adapts ('all-linear' or a comma list).")
    logging_steps: int = option(10, "Log loss and learning rate every N steps.")
    save_steps: int = option(500, "Save a checkpoint every N steps (and at the end).")
    save_total_limit: int = option(2, "Checkpoints kept in checkpoints/ (oldest deleted first).")
    eval_steps: int = option(500, "Evaluate on eval_file every N steps.")
    seed: int = option(42, "Random seed.")
    report_to: list[str] = option(["tensorboard"], "Loggers: tensorboard (logs/ in the output folder), wandb, "
                                  "none (comma list).")
    run_name: str | None = option(None, "Run name for the loggers (default: the output folder's name).")
    resume_from: str | None = option(None, "Resume: a checkpoint folder, or 'latest' for the newest one in "
                                     "output_dir/checkpoints.")
    overwrite: bool = option(False, "Start afresh even if output_dir holds checkpoints or a model of an earlier run.")
    max_samples: int | None = option(None, "Train on the first N rows only (smoke tests).")
    dataset_num_proc: int | None = option(None, "Processes for tokenizing the dataset.")
    attn_implementation: str | None = option(None, "Attention kernel (sdpa, flash_attention_2, eager; default: "
                                             "transformers' choice).")

    def __post_init__(self) -> None:
        for name in ("effective_batch_size", "max_per_device_batch_size", "max_length", "logging_steps",
                     "save_steps", "save_total_limit", "eval_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise UsageError("epochs must be positive (or set max_steps)")
        if self.learning_rate <= 0:
            raise UsageError(f"learning_rate must be positive, not {self.learning_rate}")
        if self.warmup_steps < 0:
            raise UsageError("warmup_steps must be 0 or more")
        if self.distributed not in DISTRIBUTED:
            raise UsageError(f"distributed must be one of {', '.join(DISTRIBUTED)}, not {self.distributed!r}")
        self._check_nodes()
        if self.gpus is not None:
            self._derive()
        self.report_to = [r.strip().lower() for r in self.report_to if r.strip()] or ["none"]
        unknown = [r for r in self.report_to if r not in ("tensorboard", "wandb", "none")]
        if unknown:
            raise UsageError(f"report_to: unknown logger(s) {', '.join(unknown)} (tensorboard, wandb, none)")
        if "none" in self.report_to and len(self.report_to) > 1:
            raise UsageError("report_to: 'none' cannot be combined with other loggers")
        if self.run_name is None:
            self.run_name = Path(self.output_dir).name or "sft"

    def _check_nodes(self) -> None:
        if self.nnodes < 1:
            raise UsageError(f"nnodes must be at least 1, not {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise UsageError(f"node_rank must be 0 to {self.nnodes - 1} with nnodes {self.nnodes}, not {self.node_rank}")
        if self.nnodes > 1 and not self.main_process_ip:
            raise UsageError(f"nnodes {self.nnodes} needs --main-process-ip: the address of the rank-0 machine")
        if not 0 < self.main_process_port < 65536:
            raise UsageError(f"main_process_port must be a port number, not {self.main_process_port}")

    @property
    def world_size(self) -> int:
        """Training processes over all machines: GPUs per machine (1 on the CPU) x machines."""
        return max(self.gpus or 0, 1) * self.nnodes

    @property
    def resolved(self) -> bool:
        """Whether the GPU count (and all that follows from it) is known."""
        return self.gpus is not None

    def resolve(self, devices: int | Callable[[], int]) -> SftConfig:
        """Fill in the GPU count from this machine's CUDA ``devices`` (a count, or a function that counts them,
        called only when ``gpus`` was not given): 4 when there are 4 or more, else all of them (0 = CPU); then derive
        the batch split, bf16 and gradient checkpointing. Returns the config itself."""
        if self.gpus is None:
            present = devices() if callable(devices) else devices
            self.gpus = 4 if present >= 4 else present
            self._derive()
        return self

    def _derive(self) -> None:
        """What follows from the GPU count."""
        gpus = self.gpus or 0
        self._derive_batches(self.world_size)
        if self.bf16 is None:
            self.bf16 = gpus > 0
        if self.gradient_checkpointing is None:
            self.gradient_checkpointing = gpus > 0

    def _derive_batches(self, world: int) -> None:
        eff, per, acc = self.effective_batch_size, self.per_device_batch_size, self.gradient_accumulation_steps
        if per is not None and per < 1 or acc is not None and acc < 1:
            raise UsageError("per_device_batch_size and gradient_accumulation_steps must be at least 1")
        hint = f"effective_batch_size {eff} with {world} device(s)"
        if per is None and acc is None:
            if eff % world:
                raise UsageError(f"{hint}: the effective batch must be a multiple of the GPU count")
            per_gpu = eff // world
            per = max(d for d in range(1, min(per_gpu, self.max_per_device_batch_size) + 1) if per_gpu % d == 0)
            acc = per_gpu // per
        elif acc is None:
            if eff % (per * world):
                raise UsageError(f"{hint} is not a multiple of per_device_batch_size {per} x {world}")
            acc = eff // (per * world)
        elif per is None:
            if eff % (acc * world):
                raise UsageError(f"{hint} is not a multiple of gradient_accumulation_steps {acc} x {world}")
            per = eff // (acc * world)
        elif per * acc * world != eff:
            raise UsageError(f"{hint}: per_device_batch_size {per} x gradient_accumulation_steps {acc} x {world} = "
                             f"{per * acc * world}; drop one of them to have it derived")
        self.per_device_batch_size, self.gradient_accumulation_steps = per, acc
