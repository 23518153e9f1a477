"""The end of a run: a model folder ``icdreason predict --model DIR`` loads, and a summary of what happened.

The folder gets the weights, the tokenizer with its chat template, and a generation config whose end-of-sequence
ids include the chat template's end-of-turn token, so generation stops after the answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SUMMARY_FILE", "TrainSummary", "finalize_model_dir", "read_summary"]

SUMMARY_FILE = "training_summary.json"


@dataclass
class TrainSummary:
    """What a training run did and where its outputs are."""

    command: str  # "sft" or "grpo"
    backend: str  # "trl" or "verl"
    model_dir: str  # the folder predict loads
    steps: int = 0
    wall_seconds: float = 0.0
    base_model: str = ""
    train_rows: int = 0
    first_loss: float | None = None
    final_loss: float | None = None
    log_dir: str | None = None
    checkpoints_dir: str | None = None
    resumed_from: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # last logged value of each metric (rewards, loss, …)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / SUMMARY_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str), encoding="utf-8")
        tmp.replace(path)
        return path


def read_summary(directory: Path) -> TrainSummary:
    """Load the summary a run wrote into its output folder."""
    data = json.loads((Path(directory) / SUMMARY_FILE).read_text(encoding="utf-8"))
    return TrainSummary(**data)


def finalize_model_dir(directory: Path, tokenizer, model_config=None) -> None:
    """Save the tokenizer (with chat template) and a generation config that stops at the end-of-turn token."""
    from transformers import GenerationConfig

    directory = Path(directory)
    tokenizer.save_pretrained(directory)
    gen_path = directory / "generation_config.json"
    try:
        gen = GenerationConfig.from_pretrained(directory) if gen_path.is_file() else GenerationConfig()
    except (OSError, ValueError):
        gen = GenerationConfig()
    eos = _as_list(gen.eos_token_id) or _as_list(getattr(model_config, "eos_token_id", None))
    for token in (tokenizer.eos_token, "<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(token_id, int) and token_id >= 0 and token_id != tokenizer.unk_token_id and token_id not in eos:
            if token == tokenizer.eos_token or token in tokenizer.get_vocab():
                eos.append(token_id)
    gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    gen.save_pretrained(directory)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
