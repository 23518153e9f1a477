"""Training presets from the authors' jobs (`train sft --preset deepicd-r1`, `train grpo --preset deepicd-r1-7b` /
`deepicd-r1-zero-32b`), and `train grpo` without --val validating nothing. Dry runs only: nothing trains here."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from icdreason.cli import app
from icdreason.training import GrpoConfig, SftConfig
from icdreason.training.presets import SFT_PRESETS, load_with_preset

needs_verl = pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="verl is not installed")





def dry_run(runner, *args: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["train", *args, "--dry-run"])
    assert result.exit_code == 0, result.output + result.stderr
    return yaml.safe_load(result.stdout), result.stderr


def test_sft_preset_is_the_authors_sft_job(runner, tmp_path, tiny, sft_file):
    doc, stderr = dry_run(runner, "sft", "--preset", "deepicd-r1", "--model", str(tiny), "--train", str(sft_file),
                          "-o", str(tmp_path / "out"))
    config = doc["config"]
    assert {k: config[k] for k in ("learning_rate", "lr_scheduler", "warmup_steps", "weight_decay",
                                   "per_device_batch_size", "gradient_accumulation_steps", "effective_batch_size",
                                   "epochs", "bf16", "gradient_checkpointing", "distributed", "gpus", "optimizer",
                                   "logging_steps", "seed")} == {
        "learning_rate": 2e-5, "lr_scheduler": "cosine", "warmup_steps": 100, "weight_decay": 0.01,
        "per_device_batch_size": 8, "gradient_accumulation_steps": 4, "effective_batch_size": 32, "epochs": 1.0,
        "bf16": True, "gradient_checkpointing": True, "distributed": "fsdp", "gpus": 1, "optimizer": "adamw_torch",
        "logging_steps": 5, "seed": 42}
    assert config["model"] == str(tiny)  # a flag wins over the preset's Qwen/Qwen2.5-7B-Instruct
    assert "preset deepicd-r1: one process" in " ".join(stderr.split())


def test_sft_preset_on_four_gpus_keeps_32_sequences_per_step_with_fsdp(runner, tmp_path, tiny, sft_file):
    doc, _ = dry_run(runner, "sft", "--preset", "deepicd-r1", "--model", str(tiny), "--train", str(sft_file),
                     "-o", str(tmp_path / "out"), "--gpus", "4")
    config, argv = doc["config"], doc["launch"]["argv"]
    assert (config["per_device_batch_size"], config["gradient_accumulation_steps"]) == (8, 1)
    assert argv[argv.index("--num_processes") + 1] == "4" and argv[argv.index("--mixed_precision") + 1] == "bf16"
    assert argv[argv.index("--config_file") + 1].endswith("fsdp.yaml")


def test_preset_values_sit_under_the_yaml_and_the_flags(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("warmup_steps: 50\ntrain_file: sft.parquet\n")
    cfg = load_with_preset(SftConfig, SFT_PRESETS["deepicd-r1"], run, {"learning_rate": 1e-5, "epochs": None})
    assert (cfg.learning_rate, cfg.warmup_steps, cfg.lr_scheduler, cfg.weight_decay) == (1e-5, 50, "cosine", 0.01)
    origins = cfg.origins()
    assert origins["learning_rate"] == "override" and origins["warmup_steps"] == f"YAML {run}"
    assert origins["lr_scheduler"] == "preset deepicd-r1" and origins["max_length"] == "default"
    plain = load_with_preset(SftConfig, None, None, {"train_file": "sft.parquet"})
    assert (plain.lr_scheduler, plain.weight_decay) == ("linear", 0.0)  # without the preset: icdreason's defaults


def test_unknown_training_preset_is_one_line(runner):
    result = runner.invoke(app, ["train", "sft", "--preset", "fast", "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown icdreason train sft preset 'fast' (known: deepicd-r1)"
    result = runner.invoke(app, ["train", "grpo", "--preset", "deepicd-r1", "--dry-run"])
    assert "known: deepicd-r1-7b, deepicd-r1-zero-32b" in result.stderr


@needs_verl
def test_grpo_presets_are_the_authors_jobs(runner, tmp_path, rl_file, tiny):
    doc, _ = dry_run(runner, "grpo", "--preset", "deepicd-r1-zero-32b", "--train", str(rl_file), "--val",
                     str(rl_file), "-o", str(tmp_path / "out"))
    o = dict(a.split("=", 1) for a in doc["launch"]["argv"][3:])
    assert o["actor_rollout_ref.model.path"] == "Qwen/Qwen2.5-32B-Instruct"
    assert (o["trainer.n_gpus_per_node"], o["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"]) == ("8", "4")
    assert (o["trainer.save_freq"], o["trainer.test_freq"], o["trainer.val_before_train"]) == ("50", "100", "false")
    assert o["data.val_files"] == str(rl_file) and "data.val_max_samples" not in o
    doc, _ = dry_run(runner, "grpo", "--preset", "deepicd-r1-7b", "--model", str(tiny), "--train", str(rl_file),
                     "-o", str(tmp_path / "out"))
    o = dict(a.split("=", 1) for a in doc["launch"]["argv"][3:])
    assert (o["trainer.n_gpus_per_node"], o["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"]) == ("4", "16")
    assert o["actor_rollout_ref.model.path"] == str(tiny) and o["trainer.save_freq"] == "50"


@needs_verl
def test_grpo_without_val_validates_nothing(runner, tmp_path, rl_file, tiny):
    doc, stderr = dry_run(runner, "grpo", "--backend", "verl", "--model", str(tiny), "--train", str(rl_file),
                          "-o", str(tmp_path / "out"))
    o = dict(a.split("=", 1) for a in doc["launch"]["argv"][3:])
    assert (o["trainer.test_freq"], o["trainer.val_before_train"]) == ("-1", "false")
    # verl 0.9.1 builds a validation dataset whatever the schedule: one row of the train file, never evaluated
    assert o["data.val_max_samples"] == "1" and o["data.val_files"] == str(rl_file)
    assert "no --val: nothing is validated" in " ".join(stderr.split())


def test_grpo_trl_uses_no_validation_file(runner, tmp_path, rl_file, tiny):
    doc, stderr = dry_run(runner, "grpo", "--backend", "trl", "--model", str(tiny), "--train", str(rl_file),
                          "-o", str(tmp_path / "out"), "--gpus", "0")
    assert doc["config"]["val_file"] is None and "--val" not in " ".join(stderr.split())
    _, stderr = dry_run(runner, "grpo", "--backend", "trl", "--model", str(tiny), "--train", str(rl_file),
                        "--val", str(rl_file), "-o", str(tmp_path / "out"), "--gpus", "0")
    assert "--val is checked, not used" in " ".join(stderr.split())
    assert GrpoConfig(train_file=rl_file, backend="trl", gpus=0).val_file is None
