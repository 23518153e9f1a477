"""Checks that run before any training work: the model, the devices, the repository's ``train/`` folder.

Each failed check raises one :class:`~icdreason.errors.IcdreasonError` whose message names the fix. Device checks
can be turned into notes for ``--dry-run`` on a machine other than the one that will train.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import DependencyError, IcdreasonError, InputError, UsageError
from .common import check_output_dir

if TYPE_CHECKING:
    from .grpo_config import GrpoConfig
    from .sft_config import SftConfig

__all__ = [
    "check_gpus",
    "check_loggers",
    "check_model",
    "check_run_inputs",
    "schedule_notes",
    "cuda_device_count",
    "has_package",
    "machine_check",
    "train_dir",
]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cuda_device_count() -> int:
    """CUDA devices visible to this process (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken driver counts as no GPU
        return 0


def has_package(package: str) -> bool:
    """Whether ``package`` is importable here (found without importing it)."""
    return importlib.util.find_spec(package) is not None


def check_run_inputs(cfg: SftConfig | GrpoConfig, check_parquet: Callable[..., Any], *, eval_file: Path | None,
                     eval_flag: str) -> None:
    """What every plan checks first: the training (and evaluation) Parquet, the model, the output folder.

    ``cfg.model`` becomes the checked model (a resolved directory or the hub id).
    """
    check_parquet(cfg.train_file, flag="--train")
    if eval_file is not None:
        check_parquet(eval_file, flag=eval_flag)
    cfg.model = check_model(cfg.model)
    check_output_dir(cfg.output_dir, resume_from=cfg.resume_from, overwrite=cfg.overwrite)


def machine_check(check: Callable[[], None], notes: list[str], *, dry_run: bool) -> None:
    """Run a check about this machine (packages, devices): its error stops a run, and becomes a note in a dry run."""
    try:
        check()
    except IcdreasonError as exc:
        if not dry_run:
            raise
        notes.append(f"not runnable on this machine: {exc}")


def check_loggers(report_to: list[str]) -> None:
    """A logger named in ``report_to`` must be installed (TensorBoard comes with transformers)."""
    if "wandb" in report_to and not has_package("wandb"):
        raise DependencyError("report_to wandb needs the wandb package: pip install wandb (or --report-to tensorboard)")


def check_model(model: str) -> str:
    """Accept an existing model directory (with config.json) or a hub id (``owner/name``); return it unchanged.

    A name that can only be a path (absolute, ``./``, ``~``, several slashes) must exist. Hub ids are not downloaded
    here: the trainer fetches them on the machine that trains.
    """
    name = (model or "").strip()
    if not name:
        raise UsageError("no model given: pass --model with a model directory or a hub id (Qwen/Qwen2.5-7B-Instruct)")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"model path {path} is a file: pass the directory that save_pretrained wrote")
        if not (path / "config.json").is_file():
            raise InputError(f"{path} is not a model directory (no config.json): pass the folder save_pretrained wrote")
        return str(path.resolve())
    if name.startswith(("/", ".", "~", "\\")) or name.count("/") != 1 or not _HUB_ID.match(name):
        raise InputError(f"model path {path} does not exist: check --model (a local directory or an owner/name hub id)")
    if path.parent.is_dir():  # runs/sft where runs/ is a local folder: a path, not the hub id "runs/sft"
        raise InputError(f"model folder {path} does not exist (its parent {path.parent}/ is a local folder, so --model "
                         "is read as a path): check the name, or train that model first")
    return name


def schedule_notes(cfg: SftConfig | GrpoConfig, *, batch_field: str, drops_last: bool) -> list[str]:
    """Warnings about a schedule that does not fit the data: a batch larger than the training rows, a warm-up longer
    than the run. ``drops_last``: the trainer skips an incomplete last batch (verl), so such a run has no step."""
    import math

    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(cfg.train_file).metadata.num_rows
    except Exception:  # the file was checked before; an unreadable footer here just means no advice
        return []
    if cfg.max_samples:
        rows = min(rows, cfg.max_samples)
    batch = getattr(cfg, batch_field)
    notes = []
    per_epoch = rows // batch if drops_last else math.ceil(rows / batch)
    if batch > rows:
        notes.append(f"{batch_field} {batch} is larger than the {rows} training rows: "
                     + ("the incomplete batch is dropped, so no step would run" if drops_last else
                        "every step sees all rows, and an epoch is one step"))
    total = cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else math.ceil(per_epoch * cfg.epochs)
    if cfg.warmup_steps > total:
        notes.append(f"warmup_steps {cfg.warmup_steps} exceeds the {total} training steps: the learning rate never "
                     "reaches its set value (lower warmup_steps or train longer)")
    return notes


def check_gpus(requested: int, *, what: str = "this run") -> None:
    """More GPUs requested than CUDA shows is an error (``requested`` 0 means CPU)."""
    if requested < 0:
        raise UsageError(f"--gpus must be 0 (CPU) or more, not {requested}")
    if requested == 0:
        return
    present = cuda_device_count()
    if present == 0:
        raise DependencyError(
            f"{what} asks for {requested} GPU(s) but CUDA shows none here: run it on a GPU machine, "
            f"or pass --gpus 0 to train on the CPU (tiny models only)"
        )
    if requested > present:
        raise UsageError(f"{what} asks for {requested} GPUs but CUDA shows {present}: pass --gpus {present} or fewer")


def train_dir() -> Path:
    """The repository's ``train/`` folder (configs and ``reward_fn.py``): ``$ICDREASON_TRAIN_DIR`` or the checkout's."""
    env = os.environ.get("ICDREASON_TRAIN_DIR")
    candidates = [Path(env).expanduser()] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "train")
    for candidate in candidates:
        if (candidate / "reward_fn.py").is_file():
            return candidate.resolve()
    raise InputError(
        "the train/ folder (launch configs and reward_fn.py) was not found: run from a checkout of the icdreason "
        "repository or set ICDREASON_TRAIN_DIR to its train/ folder"
    )
