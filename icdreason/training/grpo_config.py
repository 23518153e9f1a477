"""Settings of ``icdreason train grpo``. Defaults are the DeepICD-R1-7B model card's verl settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UsageError
from ..rewards.config import COMPONENTS
from ..rewards.presets import DEFAULT_PRESET, default_components, get_preset
from ..settings import Settings, option

__all__ = ["BACKENDS", "GrpoConfig"]

BACKENDS = ("verl", "trl")


@dataclass
class GrpoConfig(Settings):
    """GRPO with the icdreason rewards, through verl (GPU clusters) or trl (one machine, CPU smoke tests).

    The backend and the trl GPU count default from this machine's CUDA devices: :meth:`resolve` fills them in (the
    launcher calls it); with ``backend`` (and, for trl, ``gpus``) given the config is complete at once.
    """

    help_command: ClassVar[str] = "icdreason train grpo"

    backend: str | None = option(None, "verl (default where CUDA is present) or trl (default elsewhere).")
    model: str = option("Qwen/Qwen2.5-7B-Instruct", "Policy to start from: the SFT output folder, a local "
                        "directory or a hub id.")
    train_file: Path | None = option(None, "RL Parquet in verl's layout (`icdreason data prepare`). Required.")
    val_file: Path | None = option(None, "Validation Parquet in the same layout (verl: validated every test_freq "
                                   "steps).")
    output_dir: Path = option(Path("runs/grpo"), "Where the final model, checkpoints/, logs/ and the summary go.")
    # -- rewards -------------------------------------------------------------------------------------------------
    reward_preset: str = option(DEFAULT_PRESET, "Reward preset (`icdreason reward settings --preset NAME`): "
                                "deepicd-r1 (the paper's GRPO jobs), icdreason, authors-readme.")
    rewards: list[str] | None = option(None, "Reward components summed into the score: format, outcome, length, "
                                       "trace, judge (comma list; default: the preset's, its judge only with "
                                       "judge_url).")
    reward_config: Path | None = option(None, "YAML of further reward settings (icdreason.rewards.RewardConfig "
                                        "fields: match_weight, length_malus, …).")
    judge_url: str | None = option(None, "OpenAI-compatible base URL of the judge (for the judge component).")
    judge_model: str | None = option(None, "Model name served at judge_url.")
    judge_key_env: str = option("ICDREASON_JUDGE_API_KEY", "Environment variable holding the judge's API key.")
    judge_prompt: Path | None = option(None, "Judge prompt JSON in the authors' shape {SYSTEM, USER} (default: "
                                       "icdreason's own prompt).")
    # -- batch and optimisation (model card) -------------------------------------------------------------------
    train_batch_size: int = option(64, "Prompts per training step (model card: 64). The --train-batch-size flag also "
                                   "sets ppo_mini_batch_size: one update per step.")
    ppo_mini_batch_size: int = option(64, "Prompts per policy update (model card: 64, one update per step).")
    micro_batch_size_per_gpu: int = option(16, "Sequences per GPU per forward pass (model card: 16).")
    learning_rate: float = option(1e-6, "Actor learning rate (model card: 1e-6, constant after warm-up).")
    warmup_steps: int = option(80, "Learning-rate warm-up steps (model card: 80).")
    epochs: int = option(1, "Passes over the training prompts (model card: 1).")
    max_steps: int | None = option(None, "Stop after this many steps (default: run the epochs).")
    max_prompt_length: int = option(2048, "Longest prompt in tokens; longer prompts are left out (model card: 2048).")
    max_response_length: int = option(1024, "Longest generated response in tokens (model card: 1024).")
    entropy_coeff: float = option(0.001, "Entropy bonus coefficient (model card: 0.001).")
    kl_coef: float = option(0.001, "KL controller coefficient, algorithm.kl_ctrl.kl_coef (model card: 0.001; only "
                            "used when a KL term is on).")
    use_kl_loss: bool = option(False, "KL loss against the reference policy (model card: off, as in DAPO).")
    gradient_checkpointing: bool = option(True, "Gradient checkpointing (model card: on).")
    torch_compile: bool = option(True, "torch.compile in the actor (verl; model card: on).")
    param_offload: bool = option(False, "FSDP parameter offload (verl; model card: off).")
    optimizer_offload: bool = option(False, "FSDP optimizer offload (verl; model card: off).")
    remove_padding: bool = option(True, "verl's padding-free actor (actor_rollout_ref.model.use_remove_padding).")
    # -- rollouts (model card) ---------------------------------------------------------------------------------
    rollout_n: int = option(8, "Responses sampled per prompt, the GRPO group (model card: 8).")
    temperature: float = option(0.9, "Sampling temperature (model card: 0.9).")
    top_k: int = option(-1, "Top-k sampling (-1: off, model card).")
    top_p: float = option(1.0, "Nucleus sampling (1.0: off).")
    rollout_engine: str = option("vllm", "verl rollout engine (model card: vllm).")
    rollout_dtype: str = option("bfloat16", "Rollout dtype (model card: bfloat16).")
    tensor_parallel_size: int = option(1, "Rollout tensor parallelism (model card: 1).")
    gpu_memory_utilization: float = option(0.4, "Share of GPU memory the rollout engine takes (model card: 0.4).")
    # -- cluster -----------------------------------------------------------------------------------------------
    gpus: int | None = option(None, "GPUs per node (verl default: 4, the model card; trl default: CUDA devices "
                              "present, 0 = CPU).")
    nnodes: int = option(1, "Nodes of the Ray cluster (model card: 1). More than 1 needs ray_address.")
    ray_address: str | None = option(None, "Address of a running Ray cluster (`ray start --head` prints it), "
                                     "e.g. 10.0.0.1:6379.")
    # -- bookkeeping -------------------------------------------------------------------------------------------
    save_freq: int = option(100, "Save a checkpoint every N steps (and at the last step).")
    test_freq: int = option(50, "verl: validate on val_file every N steps (-1: never).")
    val_before_train: bool = option(True, "verl: validate on val_file before the first step (only with a val_file; "
                                    "the authors' jobs: false).")
    logging_steps: int = option(1, "trl: log every N steps.")
    report_to: list[str] = option(["tensorboard"], "Loggers: tensorboard (logs/ in the output folder), wandb, none.")
    project_name: str = option("icdreason", "Project name for the loggers.")
    run_name: str | None = option(None, "Run name for the loggers (default: the output folder's name).")
    resume_from: str | None = option(None, "Resume: 'latest', or a checkpoint folder (verl: global_step_N, "
                                     "trl: checkpoint-N).")
    overwrite: bool = option(False, "Start afresh even if output_dir holds an earlier run.")
    seed: int = option(42, "Random seed.")
    max_samples: int | None = option(None, "Use the first N prompts only (smoke tests).")
    verl_overrides: list[str] = option([], "Extra Hydra overrides for verl (key=value), checked against verl's "
                                       "packaged config like the built-in ones.")

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in BACKENDS:
            raise UsageError(f"backend must be verl or trl, not {self.backend!r}")
        get_preset(self.reward_preset)
        if self.rewards is not None:
            self.rewards = [r.strip().lower() for r in self.rewards if r.strip()]
            unknown = [r for r in self.rewards if r not in COMPONENTS]
            if unknown:
                raise UsageError(f"unknown reward component(s): {', '.join(unknown)} "
                                 f"(choose from {', '.join(COMPONENTS)})")
            if not self.rewards:
                raise UsageError("no reward component left: keep at least one of format, outcome, length, trace, "
                                 "judge")
            self.rewards = list(dict.fromkeys(self.rewards))
        self._check_numbers()
        self.report_to = [r.strip().lower() for r in self.report_to if r.strip()] or ["none"]
        bad = [r for r in self.report_to if r not in ("tensorboard", "wandb", "none")]
        if bad:
            raise UsageError(f"report_to: unknown logger(s) {', '.join(bad)} (tensorboard, wandb, none)")
        if self.run_name is None:
            self.run_name = Path(self.output_dir).name or "grpo"
        if self.nnodes > 1 and not self.ray_address:
            raise UsageError("a multi-node run needs a running Ray cluster: start it with `ray start --head` and "
                             "pass --ray-address HEAD_IP:6379")
        if self.backend == "verl" or self.backend == "trl" and self.gpus is not None:
            self._derive()

    @property
    def resolved(self) -> bool:
        """Whether the backend and the GPU count are known."""
        return self.backend is not None and self.gpus is not None

    def resolve(self, devices: int | Callable[[], int]) -> GrpoConfig:
        """Fill in what depends on this machine's CUDA ``devices`` (a count, or a function that counts them, called
        only when needed): the backend (verl with CUDA, else trl) and trl's GPU count (1 with CUDA, else 0; verl's
        default is the model card's 4). Returns the config itself."""
        if self.resolved:
            return self
        counted: list[int] = []

        def present() -> int:
            if not counted:
                counted.append(devices() if callable(devices) else devices)
            return counted[0]

        if self.backend is None:
            self.backend = "verl" if present() else "trl"
        if self.gpus is None and self.backend == "trl":
            self.gpus = 1 if present() else 0
        self._derive()
        return self

    def _derive(self) -> None:
        """What follows from the backend: verl's default GPU count, and the checks that depend on both."""
        if self.gpus is None:
            self.gpus = 4
        if self.gpus < 0:
            raise UsageError("gpus must be 0 or more")
        if self.backend == "verl" and self.gpus < 1:
            raise UsageError("the verl backend trains on GPUs: pass --gpus 1 or more, or use --backend trl")
        if self.backend == "trl" and (self.nnodes > 1 or self.ray_address):
            raise UsageError("--nnodes/--ray-address are verl options; the trl backend trains on one machine")

    def apply_ablations(self, *, no_format: bool = False, no_outcome: bool = False, no_judge: bool = False) -> None:
        """The paper's reward ablations: drop the format, outcome or judge component from ``rewards``."""
        dropped = {name for name, off in (("format", no_format), ("outcome", no_outcome), ("judge", no_judge)) if off}
        if not dropped:
            return
        if self.rewards is None:
            self.rewards = default_components(self.reward_preset, judge=bool(self.judge_url))
        self.rewards = [r for r in self.rewards if r not in dropped]
        if not self.rewards:
            raise UsageError("no reward component left after the ablation flags: keep at least one")

    def reward_options(self) -> dict[str, Any]:
        """This run's reward options, as :mod:`icdreason.rewards.report`'s run helpers take them."""
        return {"components": None if self.rewards is None else list(self.rewards), "preset": self.reward_preset,
                "reward_config": self.reward_config, "judge_url": self.judge_url, "judge_model": self.judge_model,
                "judge_api_key_env": self.judge_key_env, "judge_prompt": self.judge_prompt}

    def _check_numbers(self) -> None:
        positive = ("train_batch_size", "ppo_mini_batch_size", "micro_batch_size_per_gpu", "epochs",
                    "max_prompt_length", "max_response_length", "tensor_parallel_size", "nnodes", "save_freq",
                    "logging_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.rollout_n < 2:
            raise UsageError("rollout_n must be at least 2: GRPO compares each response with its group")
        if self.train_batch_size % self.ppo_mini_batch_size:
            raise UsageError(f"train_batch_size {self.train_batch_size} must be a multiple of ppo_mini_batch_size "
                             f"{self.ppo_mini_batch_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError("gpu_memory_utilization must be in (0, 1]")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise UsageError("learning_rate and temperature must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError("max_steps must be at least 1")
