"""`icdreason train sft` on the CPU: a tiny model learns the answer format from a few hundred synthetic traces.

The path is the one users take: tiny model -> `train sft` -> `predict --engine transformers --model OUT` (no
--constrain) -> `eval`, whose format-valid rate (the paper's check) goes from near 0 to above 0.9.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_model import build_tiny_model
from train_helpers import CASES, write_notes_jsonl, write_sft_parquet, write_template

from icdreason.cli import app

# Training settings that let a 40k-parameter model learn the format in about a minute on two CPU cores.
FAST = ["--epochs", "2", "--batch-size", "8", "--per-device-batch-size", "8", "--lr", "1e-2",
        "--warmup-steps", "5", "--max-length", "256", "--set", "logging_steps=5", "--set", "save_steps=30"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sft")


@pytest.fixture(scope="module")
def tiny(workdir) -> Path:
    return build_tiny_model(workdir / "tiny")


@pytest.fixture(scope="module")
def template(workdir) -> Path:
    return write_template(workdir / "template.txt")


@pytest.fixture(scope="module")
def sft_file(workdir, template) -> Path:
    return write_sft_parquet(workdir / "sft.parquet", rows=240, template=template)


@pytest.fixture(scope="module")
def notes(workdir) -> Path:
    return write_notes_jsonl(workdir / "notes.jsonl", rows=24)


def format_valid_rate(runner, model: Path, notes: Path, template: Path, out: Path) -> float:
    """predict (transformers engine, greedy, no --constrain) + eval; the eval's share of format-valid answers."""
    preds = out / "preds.jsonl"
    result = runner.invoke(app, ["predict", "--engine", "transformers", "--model", str(model), str(notes),
                                 "-o", str(preds), "--prompt-template", str(template), "--max-new-tokens", "40",
                                 "--no-enrich", "--quiet"])
    assert result.exit_code == 0, result.stdout + result.stderr
    report = out / "eval.json"
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(notes), "--out", str(report)])
    assert result.exit_code == 0, result.stdout + result.stderr
    (run,) = json.loads(report.read_text())["runs"]
    assert run["rows"] == 24
    return run["format_ok_rate"]


def test_billable_codes_of_the_synthetic_data(kb):
    assert all(kb.validate(code).status == "billable" for code in CASES)


def test_sft_teaches_the_answer_format_end_to_end(runner, kb_file, tiny, template, sft_file, notes, workdir):
    before = workdir / "before"
    before.mkdir()
    assert format_valid_rate(runner, tiny, notes, template, before) <= 0.1

    out = workdir / "model"
    result = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(out),
                                 *FAST])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert str(out.resolve()) in result.stdout and "steps" in result.stdout  # the final summary
    assert "Research use only" in result.stderr

    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 60 and summary["train_rows"] == 240  # 240 rows / batch 8 x 2 epochs
    assert summary["final_loss"] < summary["first_loss"] / 3  # the loss goes down
    events = list((out / "logs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0  # TensorBoard logs by default
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint-")) == \
        ["checkpoint-30", "checkpoint-60"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json", "train_config.yaml"):
        assert (out / name).is_file(), name
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.padding_side == AutoTokenizer.from_pretrained(tiny).padding_side  # as the base model has it
    stop = GenerationConfig.from_pretrained(out).eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (stop if isinstance(stop, list) else [stop])

    after = workdir / "after"
    after.mkdir()
    assert format_valid_rate(runner, out, notes, template, after) > 0.9


def test_resume_continues_from_the_latest_checkpoint(runner, tiny, sft_file, workdir):
    out = workdir / "resumable"
    common = ["--model", str(tiny), "--train", str(sft_file), "-o", str(out), "--report-to", "none",
              "--batch-size", "8", "--per-device-batch-size", "8", "--max-length", "256", "--set", "save_steps=3"]
    assert runner.invoke(app, ["train", "sft", *common, "--max-steps", "3"]).exit_code == 0
    again = runner.invoke(app, ["train", "sft", *common, "--max-steps", "3"])
    assert again.exit_code == 2 and "--resume-from latest" in again.stderr
    result = runner.invoke(app, ["train", "sft", *common, "--max-steps", "5", "--resume-from", "latest"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 5 and summary["resumed_from"].endswith("checkpoint-3")


def test_lora_adapter_is_merged_into_a_loadable_model(runner, tiny, sft_file, workdir):
    from transformers import AutoModelForCausalLM

    out = workdir / "lora"
    result = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(out),
                                 "--lora", "--max-steps", "2", "--report-to", "none", "--max-length", "256",
                                 "--set", "lora_target_modules=q_proj,v_proj", "--set", "lora_r=4"])
    assert result.exit_code == 0, result.stderr
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny)
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in base.parameters())
    assert not any("lora" in name for name, _ in merged.named_parameters())
