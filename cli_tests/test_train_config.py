"""`icdreason train`: run configs, dry runs and the one-line errors for bad input (no training happens here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from icdreason.cli import app
from icdreason.training import GrpoConfig, SftConfig
from icdreason.training.checks import train_dir

REPO = Path(__file__).resolve().parents[1]





def dry_run(runner, *args: str) -> dict:
    result = runner.invoke(app, ["train", *args, "--dry-run"])
    assert result.exit_code == 0, result.output + result.stderr
    return yaml.safe_load(result.stdout)


def fails(runner, *args: str, code: int | None = None) -> str:
    """Run a command that must fail; return its one-line error."""
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code != 0, result.stdout
    if code is not None:
        assert result.exit_code == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


# -- configs ------------------------------------------------------------------------------------------------------


def test_defaults_are_the_paper_and_model_card_settings():
    sft = SftConfig(gpus=4)
    assert (sft.epochs, sft.effective_batch_size, sft.learning_rate, sft.warmup_steps) == (1.0, 32, 2e-5, 100)
    assert sft.optimizer == "adamw_torch" and sft.lr_scheduler == "linear"
    assert sft.per_device_batch_size * sft.gradient_accumulation_steps * 4 == 32
    assert sft.bf16 is True and sft.gradient_checkpointing is True
    grpo = GrpoConfig(backend="verl")
    assert (grpo.train_batch_size, grpo.ppo_mini_batch_size, grpo.micro_batch_size_per_gpu) == (64, 64, 16)
    assert (grpo.learning_rate, grpo.warmup_steps, grpo.epochs) == (1e-6, 80, 1)
    assert (grpo.max_prompt_length, grpo.max_response_length) == (2048, 1024)
    assert (grpo.rollout_n, grpo.temperature, grpo.top_k, grpo.rollout_dtype) == (8, 0.9, -1, "bfloat16")
    assert (grpo.tensor_parallel_size, grpo.gpu_memory_utilization) == (1, 0.4)
    assert (grpo.entropy_coeff, grpo.kl_coef, grpo.use_kl_loss) == (0.001, 0.001, False)
    assert grpo.gradient_checkpointing and grpo.torch_compile and not grpo.param_offload
    assert not grpo.optimizer_offload and (grpo.gpus, grpo.nnodes) == (4, 1)


def test_every_config_field_has_help():
    for cls in (SftConfig, GrpoConfig):
        for name, _default, text in cls.describe():
            assert len(text) > 5 and text.endswith((".", ")")), f"{cls.__name__}.{name} has no help"


@pytest.mark.parametrize("gpus, per_device, accumulation", [(0, 4, 8), (1, 4, 8), (2, 4, 4), (4, 4, 2), (8, 4, 1)])
def test_effective_batch_is_split_for_the_gpu_count(gpus, per_device, accumulation):
    cfg = SftConfig(gpus=gpus)
    assert (cfg.per_device_batch_size, cfg.gradient_accumulation_steps) == (per_device, accumulation)


def test_batch_sizes_that_do_not_multiply_out_are_refused():
    from icdreason.errors import UsageError

    with pytest.raises(UsageError, match="multiple of the GPU count"):
        SftConfig(gpus=3)
    with pytest.raises(UsageError, match="= 64"):
        SftConfig(gpus=4, per_device_batch_size=4, gradient_accumulation_steps=4)
    assert SftConfig(gpus=4, per_device_batch_size=8).gradient_accumulation_steps == 1


def test_sample_run_configs_load(tmp_path):
    sft = SftConfig.load(train_dir() / "sft.yaml")
    grpo = GrpoConfig.load(train_dir() / "grpo.yaml")
    assert sft.learning_rate == 2e-5 and sft.effective_batch_size == 32
    assert grpo.backend == "verl" and grpo.rollout_n == 8


def test_yaml_supplies_fields_and_flags_override_them(runner, tmp_path, tiny, sft_file):
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"learning_rate": 1e-4, "epochs": 3, "lora": True, "model": str(tiny)}))
    doc = dry_run(runner, "sft", "--config", str(run), "--train", str(sft_file), "--lr", "3e-5",
                  "-o", str(tmp_path / "out"), "--set", "weight_decay=0.01", "--set", "report-to=none")
    config = doc["config"]
    assert config["learning_rate"] == 3e-5  # the flag wins over the file
    assert config["epochs"] == 3.0 and config["lora"] is True  # from the file
    assert config["weight_decay"] == 0.01 and config["report_to"] == ["none"]  # --set, coerced
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_unknown_config_keys_fail(runner, tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("learning_rat: 0.1\n")
    line = fails(runner, "sft", "--config", str(run), "--dry-run", code=2)
    assert "unknown key(s)" in line and "learning_rat" in line
    line = fails(runner, "grpo", "--set", "rollouts=4", "--dry-run", code=2)
    assert "rollouts" in line


def test_values_of_the_wrong_type_fail(runner):
    assert "epochs: expected float, got 'lots'" in fails(runner, "sft", "--set", "epochs=lots", "--dry-run")
    assert "expects KEY=VALUE" in fails(runner, "sft", "--set", "epochs", "--dry-run")


def test_help_config_lists_every_field(runner):
    result = runner.invoke(app, ["train", "sft", "--help-config"])
    assert result.exit_code == 0
    for name, _default, _help in SftConfig.describe():
        assert name in result.stdout


# -- sft dry runs -------------------------------------------------------------------------------------------------


def test_sft_dry_run_on_the_cpu_runs_one_process(runner, tmp_path, tiny, sft_file):
    out = tmp_path / "out"
    doc = dry_run(runner, "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(out))
    assert doc["config"]["gpus"] == 0 and doc["config"]["bf16"] is False
    assert doc["launch"]["in_process"] is True
    assert doc["launch"]["argv"][1:] == ["-m", "icdreason.training.sft", "--config", str(out / "train_config.yaml")]


def test_sft_dry_run_with_four_gpus_builds_the_accelerate_launch(runner, tmp_path, tiny, sft_file):
    result = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--train", str(sft_file), "-o",
                                 str(tmp_path / "out"), "--gpus", "4", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    argv = doc["launch"]["argv"]
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    assert argv[argv.index("--config_file") + 1] == str(train_dir() / "accelerate" / "fsdp.yaml")
    assert argv[argv.index("--num_processes") + 1] == "4"
    assert argv[argv.index("--mixed_precision") + 1] == "bf16"
    assert doc["config"]["per_device_batch_size"] * doc["config"]["gradient_accumulation_steps"] * 4 == 32
    assert doc["config"]["gradient_checkpointing"] is True
    assert "CUDA shows none" in result.stderr  # the dry run says this machine could not run it


def test_sft_deepspeed_dry_run_points_at_the_zero3_json(runner, tmp_path, tiny, sft_file):
    doc = dry_run(runner, "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(tmp_path / "o"),
                  "--gpus", "4", "--distributed", "deepspeed-zero3")
    argv = doc["launch"]["argv"]
    ds = Path(argv[argv.index("--deepspeed_config_file") + 1])
    assert ds.is_absolute() and json.loads(ds.read_text())["zero_optimization"]["stage"] == 3
    assert argv[argv.index("--config_file") + 1].endswith("deepspeed_zero3.yaml")


def test_sft_on_two_machines_runs_the_same_command_with_each_rank(runner, tmp_path, tiny, sft_file):
    """accelerate's --num_processes is the total over the machines: 2 machines x 8 GPUs = 16 processes, 8 here."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env  # fills in what torchrun gets

    base = ["sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(tmp_path / "o"), "--gpus", "8",
            "--nnodes", "2", "--main-process-ip", "10.0.0.1", "--main-process-port", "29555"]
    docs = [dry_run(runner, *base, "--node-rank", rank) for rank in ("0", "1")]
    argvs = [doc["launch"]["argv"] for doc in docs]
    flags = argvs[1][argvs[1].index("--num_processes"):argvs[1].index("--mixed_precision")]
    assert flags == ["--num_processes", "16", "--num_machines", "2", "--machine_rank", "1", "--main_process_ip",
                     "10.0.0.1", "--main_process_port", "29555"]
    assert [a for a in argvs[0] if a not in ("0", "1")] == [a for a in argvs[1] if a not in ("0", "1")]
    config = docs[1]["config"]
    assert config["per_device_batch_size"] * config["gradient_accumulation_steps"] * 16 == 32
    args = launch_command_parser().parse_args(argvs[1][3:])  # what accelerate makes of it
    args, _, _ = _validate_launch_command(args)
    prepare_multi_gpu_env(args)
    assert (str(args.nproc_per_node), str(args.nnodes), int(args.node_rank)) == ("8", "2", 1)
    assert args.rdzv_endpoint == "10.0.0.1:29555"  # torchrun's rendezvous on the rank-0 machine


def test_sft_multi_node_needs_the_main_machine_and_gpus(runner, tmp_path, tiny, sft_file):
    base = ["sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(tmp_path / "o"), "--dry-run"]
    assert "needs --main-process-ip" in fails(runner, *base, "--gpus", "8", "--nnodes", "2", code=2)
    assert "node_rank must be 0 to 1" in fails(runner, *base, "--gpus", "8", "--nnodes", "2", "--node-rank", "2",
                                               "--main-process-ip", "h0", code=2)
    assert "needs GPUs" in fails(runner, *base, "--gpus", "0", "--nnodes", "2", "--main-process-ip", "h0", code=2)


def test_launch_configs_are_valid_accelerate_and_deepspeed_files():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {"fsdp.yaml": "FSDP", "multi_gpu.yaml": "MULTI_GPU", "single_gpu.yaml": "NO",
             "deepspeed_zero2.yaml": "DEEPSPEED", "deepspeed_zero3.yaml": "DEEPSPEED"}
    for name, kind in kinds.items():
        config = load_config_from_file(str(train_dir() / "accelerate" / name))
        assert str(config.distributed_type).endswith(kind), name
    for stage in (2, 3):
        ds = json.loads((train_dir() / "deepspeed" / f"zero{stage}.json").read_text())
        assert ds["zero_optimization"]["stage"] == stage and ds["train_micro_batch_size_per_gpu"] == "auto"
        accelerate = yaml.safe_load((train_dir() / "accelerate" / f"deepspeed_zero{stage}.yaml").read_text())
        assert (REPO / accelerate["deepspeed_config"]["deepspeed_config_file"]).is_file()


# -- bad input: one line, before any work --------------------------------------------------------------------------


def test_more_gpus_than_present_fails(runner, tmp_path, tiny, sft_file):
    line = fails(runner, "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(tmp_path / "o"),
                 "--gpus", "2")
    assert "asks for 2 GPU(s) but CUDA shows none" in line
    assert not (tmp_path / "o").exists()


def test_missing_model_path_fails(runner, tmp_path, sft_file):
    line = fails(runner, "sft", "--model", str(tmp_path / "no-such-model"), "--train", str(sft_file), "--dry-run")
    assert "does not exist" in line
    line = fails(runner, "sft", "--model", str(sft_file.parent), "--train", str(sft_file), "--dry-run")
    assert "no config.json" in line


def test_a_model_that_looks_like_a_local_path_is_not_taken_for_a_hub_id(runner, tmp_path, sft_file, rl_file,
                                                                       monkeypatch):
    # runs/sft where runs/ exists is a path to a folder not trained yet, not the hub id "runs/sft".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    line = fails(runner, "sft", "--model", "runs/sft", "--train", str(sft_file), "--dry-run")
    assert line.startswith("error: model folder runs/sft does not exist (its parent runs/ is a local folder")
    line = fails(runner, "grpo", "--model", "runs/sft", "--train", str(rl_file), "--dry-run")
    assert "model folder runs/sft does not exist" in line
    # Without such a folder an owner/name is still a hub id (not downloaded by a dry run).
    result = runner.invoke(app, ["train", "sft", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--train", str(sft_file),
                                 "-o", str(tmp_path / "o"), "--dry-run"])
    assert result.exit_code == 0, result.stderr


def test_dry_runs_warn_when_the_schedule_does_not_fit_the_data(runner, tmp_path, tiny, sft_file, rl_file):
    result = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--train", str(sft_file), "-o",
                                 str(tmp_path / "o"), "--dry-run"])  # 16 rows; paper: batch 32, 100 warm-up steps
    assert result.exit_code == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["notes"]
    assert "effective_batch_size 32 is larger than the 16 training rows: every step sees all rows, and an epoch " \
           "is one step" in notes
    assert "warmup_steps 100 exceeds the 1 training steps: the learning rate never reaches its set value (lower " \
           "warmup_steps or train longer)" in notes
    assert "note: warmup_steps 100 exceeds the 1 training steps" in result.stderr
    fitting = yaml.safe_load(runner.invoke(app, ["train", "sft", "--model", str(tiny), "--train", str(sft_file),
                                                 "-o", str(tmp_path / "o"), "--batch-size", "4", "--warmup-steps",
                                                 "2", "--dry-run"]).stdout)
    assert not [n for n in fitting["notes"] if "batch_size" in n or "warmup" in n]  # 16 rows / 4 = 4 steps
    grpo = yaml.safe_load(runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(tiny), "--train",
                                              str(rl_file), "-o", str(tmp_path / "g"), "--dry-run"]).stdout)
    assert "train_batch_size 64 is larger than the 8 training rows: the incomplete batch is dropped, so no step " \
           "would run" in grpo["notes"]


def test_missing_and_misshapen_parquet_fail(runner, tmp_path, tiny):
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = ["sft", "--model", str(tiny), "--dry-run", "--train"]
    assert "no SFT training file given" in fails(runner, *base[:-1], code=2)
    assert "not found" in fails(runner, *base, str(tmp_path / "nope.parquet"))
    (tmp_path / "notes.txt").write_text("not parquet")
    assert "is not a Parquet file" in fails(runner, *base, str(tmp_path / "notes.txt"))
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "a.parquet")
    assert "has no 'messages' column (found: text)" in fails(runner, *base, str(tmp_path / "a.parquet"))
    pq.write_table(pa.table({"messages": ["hello"]}), tmp_path / "b.parquet")
    assert "must be a list of {role, content} messages" in fails(runner, *base, str(tmp_path / "b.parquet"))
    no_answer = [[{"role": "user", "content": "note"}, {"role": "user", "content": "more"}]]
    pq.write_table(pa.table({"messages": no_answer, "id": ["n1"]}), tmp_path / "c.parquet")
    assert "row n1: the last message is from 'user'" in fails(runner, *base, str(tmp_path / "c.parquet"))


def test_rl_parquet_shape_is_checked(runner, tmp_path, tiny, sft_file):
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = ["grpo", "--backend", "trl", "--model", str(tiny), "--dry-run", "--train"]
    assert "has no 'prompt' column" in fails(runner, *base, str(sft_file))
    prompt = [[{"role": "user", "content": "note"}]]
    pq.write_table(pa.table({"prompt": prompt, "reward_model": ["I21.4"], "data_source": ["x"]}), tmp_path / "r.pq")
    assert "reward_model' must be a struct with a ground_truth field" in fails(runner, *base, str(tmp_path / "r.pq"))
    table = pa.table({"prompt": prompt, "reward_model": [{"style": "rule", "ground_truth": ""}], "data_source": ["x"]})
    pq.write_table(table, tmp_path / "s.pq")
    assert "1 of 1 rows have no reward_model.ground_truth" in fails(runner, *base, str(tmp_path / "s.pq"))


def test_an_earlier_run_is_not_overwritten(runner, tmp_path, tiny, sft_file):
    out = tmp_path / "out"
    (out / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    line = fails(runner, "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(out), "--dry-run")
    assert "--resume-from latest" in line and "--overwrite" in line
    dry_run(runner, "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(out), "--overwrite")
    bad = fails(runner, "sft", "--model", str(tiny), "--train", str(sft_file), "-o", str(out), "--resume-from",
                str(out / "checkpoints" / "checkpoint-5"), "--dry-run")
    assert "not a trainer checkpoint folder" in bad


def test_grpo_trl_dry_run_maps_the_model_card_batch(runner, tmp_path, tiny, rl_file):
    doc = dry_run(runner, "grpo", "--backend", "trl", "--model", str(tiny), "--train", str(rl_file),
                  "-o", str(tmp_path / "o"), "--no-format")
    # 64 prompts x 8 responses = 512 completions per update, in micro batches of 16 on one device.
    assert doc["trl"] == {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 32,
                          "num_generations": 8}
    assert doc["config"]["rewards"] == ["outcome", "trace"]  # the deepicd-r1 preset's, without its judge
    assert doc["reward"]["components"] == ["outcome", "trace"]
    assert doc["launch"]["in_process"] is True


def test_importing_the_train_cli_stays_light():
    code = ("import sys, icdreason.cli.train, icdreason.training; "
            "print([m for m in ('torch', 'transformers', 'trl', 'datasets', 'pyarrow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
