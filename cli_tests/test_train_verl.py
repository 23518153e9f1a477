"""`icdreason train grpo --backend verl`: the launch is checked against verl's packaged config before any GPU is booked.

verl is installed in the test environment with `pip install --no-deps verl` (a pure-Python wheel): enough to read its
trainer config and to load `train/reward_fn.py`; the real run (last test) needs CUDA and verl's dependencies.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from train_helpers import write_rl_parquet

from icdreason.cli import app
from icdreason.errors import UsageError
from icdreason.training.checks import train_dir

if importlib.util.find_spec("verl") is None:
    pytest.skip("verl is not installed (pip install --no-deps verl)", allow_module_level=True)

from icdreason.training.verl_config import (  # noqa: E402
    check_overrides,
    composed_config,
    flat_keys,
    verl_config_dir,
)


@pytest.fixture(scope="module")
def model_dir(tiny) -> Path:
    """The policy: a model folder as far as the checks go (conftest's ``tiny``)."""
    return tiny



def verl_dry_run(runner, model_dir, rl_file, out, *extra: str):
    result = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                 str(rl_file), "-o", str(out), *extra, "--dry-run"])
    assert result.exit_code == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout), result.stderr


def overrides_of(doc: dict) -> dict[str, str]:
    argv = doc["launch"]["argv"]
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    return dict(a.split("=", 1) for a in argv[3:])


def test_hydra_composition_matches_verls_own_flattened_config():
    """Our reading of ppo_trainer.yaml's defaults list gives the keys verl's generated reference file lists."""
    ours = flat_keys(composed_config())
    generated = flat_keys(yaml.safe_load((verl_config_dir() / "_generated_ppo_trainer.yaml").read_text()))
    assert set(generated) <= set(ours)
    assert set(ours) - set(generated) <= {"model_engine"}  # the group choice, which print_cfg drops
    assert ours["actor_rollout_ref.rollout.n"] == generated["actor_rollout_ref.rollout.n"] == 1
    assert ours["actor_rollout_ref.actor.ppo_mini_batch_size"] == 256  # dp_actor.yaml's value won over actor.yaml


def test_dry_run_carries_the_model_card_settings(runner, model_dir, rl_file, tmp_path):
    out = tmp_path / "run"
    doc, stderr = verl_dry_run(runner, model_dir, rl_file, out)
    o = overrides_of(doc)
    expected = {
        "algorithm.adv_estimator": "grpo",
        "data.train_batch_size": "64",
        "actor_rollout_ref.actor.ppo_mini_batch_size": "64",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": "16",
        "actor_rollout_ref.actor.optim.lr": "1e-06",
        "actor_rollout_ref.actor.optim.lr_warmup_steps": "80",
        "trainer.total_epochs": "1",
        "data.max_prompt_length": "2048",
        "data.max_response_length": "1024",
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": "8",
        "actor_rollout_ref.rollout.temperature": "0.9",
        "actor_rollout_ref.rollout.top_k": "-1",
        "actor_rollout_ref.rollout.dtype": "bfloat16",
        "actor_rollout_ref.rollout.tensor_model_parallel_size": "1",
        "actor_rollout_ref.rollout.gpu_memory_utilization": "0.4",
        "actor_rollout_ref.actor.entropy_coeff": "0.001",
        "algorithm.kl_ctrl.kl_coef": "0.001",
        "actor_rollout_ref.actor.use_kl_loss": "false",
        "actor_rollout_ref.model.enable_gradient_checkpointing": "true",
        "actor_rollout_ref.actor.use_torch_compile": "true",
        "actor_rollout_ref.actor.fsdp_config.param_offload": "false",
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": "false",
        "actor_rollout_ref.model.use_remove_padding": "true",
        "trainer.n_gpus_per_node": "4",
        "trainer.nnodes": "1",
        "data.train_files": str(rl_file),
        "actor_rollout_ref.model.path": str(model_dir),
        "reward.custom_reward_function.path": str(train_dir() / "reward_fn.py"),
        "reward.custom_reward_function.name": "compute_score",
        "+reward.custom_reward_function.reward_kwargs.config": str(out / "reward.yaml"),
        "trainer.default_local_dir": str(out / "checkpoints"),
        "trainer.logger": "[console,tensorboard]",
    }
    for key, value in expected.items():
        assert o.get(key) == value, key
    assert Path(o["reward.custom_reward_function.path"]).is_file()
    assert doc["launch"]["env"] == {"TENSORBOARD_DIR": str(out / "logs")}
    assert "needs CUDA GPUs" in stderr  # this machine could not run it, and the dry run says so
    assert not out.exists()


def test_every_override_key_exists_in_verls_generated_config(runner, model_dir, rl_file, tmp_path):
    """A second opinion on the key check: walk verl's own flattened file, not our composition."""
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "run", "--val", str(rl_file), "--max-steps", "5",
                          "--resume-from", "latest", "--report-to", "tensorboard,wandb")
    generated = flat_keys(yaml.safe_load((verl_config_dir() / "_generated_ppo_trainer.yaml").read_text()))
    keys = [k for k in overrides_of(doc)]
    assert len(keys) > 40
    for key in keys:
        if key.startswith("+"):
            assert key.lstrip("+").rsplit(".", 2)[0] in generated, key
        else:
            assert key in generated, key
    o = overrides_of(doc)
    assert o["trainer.total_training_steps"] == "5" and o["trainer.resume_mode"] == "auto"
    assert o["trainer.logger"] == "[console,tensorboard,wandb]" and o["trainer.test_freq"] == "50"


def test_typos_and_wrong_values_fail_on_the_laptop(runner, model_dir, rl_file, tmp_path):
    result = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                 str(rl_file), "-o", str(tmp_path / "o"), "--dry-run",
                                 "--verl-override", "actor_rollout_ref.rollout.temprature=1.0"])
    assert result.exit_code == 2
    assert "no key 'actor_rollout_ref.rollout.temprature'" in result.stderr
    assert "did you mean 'actor_rollout_ref.rollout.temperature'" in result.stderr
    with pytest.raises(UsageError, match="expects true or false"):
        check_overrides(["actor_rollout_ref.actor.use_kl_loss=sometimes"])
    with pytest.raises(UsageError, match="already exists"):
        check_overrides(["+trainer.nnodes=2"])
    with pytest.raises(UsageError, match="no section 'trainr'"):
        check_overrides(["+trainr.extra=1"])
    check_overrides(["+ray_kwargs.ray_init.address=auto", "trainer.nnodes=2", "~trainer.logger"])


def test_the_example_verl_yaml_uses_only_existing_keys():
    example = yaml.safe_load((train_dir() / "verl" / "grpo_deepicd_r1_7b.yaml").read_text())
    del example["defaults"], example["hydra"]

    def text(value) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)

    leaves = {k: v for k, v in flat_keys(example).items() if not isinstance(v, dict)}
    assert len(leaves) > 30
    check_overrides([f"{k}={text(v)}" for k, v in leaves.items()])


def test_multi_node_runs_join_an_existing_ray_cluster(runner, model_dir, rl_file, tmp_path):
    result = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                 str(rl_file), "--nnodes", "2", "--dry-run"])
    assert result.exit_code == 2 and "ray start --head" in result.stderr
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "o", "--nnodes", "2", "--gpus", "8",
                          "--ray-address", "10.0.0.1:6379")
    o = overrides_of(doc)
    assert (o["trainer.nnodes"], o["trainer.n_gpus_per_node"]) == ("2", "8")
    assert doc["launch"]["env"]["RAY_ADDRESS"] == "10.0.0.1:6379"
    assert doc["launch"]["command"].startswith("TENSORBOARD_DIR=")


def test_on_a_ray_cluster_the_reward_function_and_settings_travel_with_the_job(runner, model_dir, rl_file, tmp_path):
    """Without a shared filesystem no reward path of this machine may reach verl's reward workers (Ray puts them on
    any node): verl imports the adapter by name, the package travels in the job's runtime environment, and every
    setting is an inline value, which the worker's compute_score turns into the run's settings."""
    import icdreason
    from icdreason.rewards import RewardConfig
    from icdreason.rewards.report import reward_config_for_run, write_reward_config
    from icdreason.rewards.verl_adapter import compute_score

    out = tmp_path / "o"
    doc, _ = verl_dry_run(runner, model_dir, rl_file, out, "--nnodes", "2", "--gpus", "8", "--ray-address",
                          "10.0.0.1:6379", "--reward", "format,outcome,length")
    o = overrides_of(doc)
    assert o["reward.custom_reward_function.path"] == "pkg://icdreason.rewards.verl_adapter"
    assert o["reward.custom_reward_function.name"] == "compute_score"
    package = Path(icdreason.__file__).parent
    assert o["+ray_kwargs.ray_init.runtime_env.py_modules"] == f"['{package}']"
    inline = {k.rsplit(".", 1)[1]: v for k, v in o.items() if ".reward_kwargs." in k}
    assert set(inline) == set(RewardConfig.field_names())  # "config" (a local YAML path) is not among them
    assert inline["components"] == "['format','outcome','length']" and inline["judge_url"] == "null"
    assert not [v for k, v in o.items() if "reward" in k and (str(out) in v or str(train_dir()) in v)]
    # A reward worker: Hydra's values (plain YAML here: no quotes inside them) as compute_score's keyword arguments.
    kwargs = {k: yaml.safe_load(v) for k, v in inline.items()}
    run_file = write_reward_config(reward_config_for_run(["format", "outcome", "length"]), tmp_path / "reward.yaml")
    for answer in ("<think>chest pain, troponin up</think><diagnosis>I21.4</diagnosis>", "no tags", "<think>x</think>"
                   "<diagnosis>I10</diagnosis>"):
        assert compute_score("mimic", answer, "I214", {"note": "x"}, **kwargs) == \
            compute_score("mimic", answer, "I214", {"note": "x"}, config=str(run_file))


def test_inline_values_are_written_in_hydras_override_syntax():
    """Checked once against hydra-core 1.3.2's own override parser (not installed for the tests): inside quotes only
    a quote and the backslashes just before a quote are escaped."""
    from icdreason.rewards import RewardConfig
    from icdreason.training.grpo_verl import inline_reward_overrides

    values = dict(line.split("=", 1) for line in inline_reward_overrides(
        RewardConfig(preset="icdreason", judge_url="http://h:8000/v1", judge_model="it's\\x", judge_cache="ends\\")))
    key = "+reward.custom_reward_function.reward_kwargs."
    assert values[key + "judge_url"] == "'http://h:8000/v1'"
    assert values[key + "judge_model"] == "'it\\'s\\x'" and values[key + "judge_cache"] == "'ends\\\\'"
    assert values[key + "match_weight"] == "15.0" and values[key + "length_malus"] == "-0.0001"
    assert values[key + "components"] == "['format','outcome','length','trace']"


def test_without_cuda_the_verl_run_stops_with_one_line(runner, model_dir, rl_file, tmp_path):
    result = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                 str(rl_file), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "needs CUDA GPUs" in result.stderr and "--backend trl" in result.stderr
    assert not (tmp_path / "o").exists()


def test_ablation_flags_and_the_judge(runner, model_dir, rl_file, tmp_path):
    doc, stderr = verl_dry_run(runner, model_dir, rl_file, tmp_path / "a", "--no-format")
    assert doc["reward"]["preset"] == "deepicd-r1"  # the paper's reward: no length term; its judge needs a server
    assert doc["reward"]["components"] == ["outcome", "trace"]
    assert "the LLM-judge term is off" in stderr and "departs from the paper" in " ".join(stderr.split())
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "a2", "--reward-preset", "icdreason", "--no-format")
    assert doc["reward"]["components"] == ["outcome", "length", "trace"] and doc["reward"]["trace_reward"] == 0.1
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "b", "--reward", "format,outcome", "--no-outcome")
    assert doc["reward"]["components"] == ["format"]
    result = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                 str(rl_file), "--reward", "format,outcome,judge", "--dry-run"])
    assert result.exit_code == 2 and "--judge-url and --judge-model" in result.stderr
    judge = ["--reward", "format,outcome,judge", "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "j"]
    doc, stderr = verl_dry_run(runner, model_dir, rl_file, tmp_path / "c", *judge)
    assert doc["reward"]["judge_url"] == "http://127.0.0.1:9/v1"
    assert "judge at http://127.0.0.1:9/v1 is unreachable" in stderr  # a note in a dry run, an error in a real one
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "d", *judge, "--no-judge")
    assert doc["reward"]["components"] == ["format", "outcome"]
    # the preset's judge term comes on with a server: its model is the paper's judge
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "e", "--judge-url", "http://127.0.0.1:9/v1")
    assert doc["reward"]["components"] == ["format", "outcome", "trace", "judge"]
    assert doc["reward"]["judge_model"] == "meta-llama/Llama-3.1-8B-Instruct" and doc["reward"]["judge_scale"] == 0.8


def test_reward_preset_and_judge_prompt_reach_the_run_reward_settings(runner, model_dir, rl_file, tmp_path):
    prompt = tmp_path / "judge.json"
    prompt.write_text(json.dumps({"SYSTEM": "Grade it.", "USER": "$$ADMISSION_NOTE$$ / $$TRACE$$ / $$ICD$$"}))
    doc, _ = verl_dry_run(runner, model_dir, rl_file, tmp_path / "a", "--reward-preset", "authors-readme",
                          "--judge-prompt", str(prompt))
    assert doc["config"]["reward_preset"] == "authors-readme" and doc["reward"]["rule"] == "multi-trace"
    assert doc["reward"]["judge_prompt"] == str(prompt) and doc["reward"]["length_malus"] == -1e-4
    broken = tmp_path / "broken.json"
    broken.write_text('{"SYSTEM": "only a system text"}')
    result = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                 str(rl_file), "--judge-prompt", str(broken), "--dry-run"])
    assert result.exit_code == 2 and "expected an object with string keys SYSTEM and USER" in result.stderr
    unknown = runner.invoke(app, ["train", "grpo", "--backend", "verl", "--model", str(model_dir), "--train",
                                  str(rl_file), "--reward-preset", "paper", "--dry-run"])
    assert unknown.exit_code == 2 and "unknown reward preset 'paper'" in unknown.stderr


def test_reward_fn_loads_by_path_and_reads_the_run_reward_settings(tmp_path):
    """What verl's workers do: import train/reward_fn.py from its path, call compute_score with reward_kwargs."""
    from icdreason.training import GrpoConfig
    from icdreason.rewards.report import reward_config_for_run, write_reward_config

    cfg = GrpoConfig(backend="trl", rewards=["format", "outcome"])
    settings = write_reward_config(reward_config_for_run(**cfg.reward_options()), tmp_path / "reward.yaml")
    spec = importlib.util.spec_from_file_location("custom_reward", train_dir() / "reward_fn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    good = "chest pain, troponin up</think>\n<diagnosis>I21.4</diagnosis>"
    exact = module.compute_score("mimic", good, "I214", {"note": "x"}, config=str(settings))
    assert exact["outcome"] == 60.0 and exact["trace"] == 0.0  # the trace term is off in this run
    assert exact["score"] == exact["format"] + exact["outcome"] == 60.0
    wrong = module.compute_score("mimic", "no tags at all", "I214", {"note": "x"}, config=str(settings))
    assert wrong["score"] < exact["score"]


@pytest.mark.gpu
def test_a_short_real_verl_grpo_job(runner, tmp_path):
    """Two GRPO steps of a tiny model through verl on one GPU (needs CUDA, ray, vllm and verl's dependencies)."""
    for module in ("ray", "vllm", "hydra"):
        pytest.importorskip(module)
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", hidden_size=64, layers=2)
    data = write_rl_parquet(tmp_path / "rl.parquet", rows=16)
    out = tmp_path / "grpo"
    result = runner.invoke(app, [
        "train", "grpo", "--backend", "verl", "--model", str(model), "--train", str(data), "-o", str(out),
        "--gpus", "1", "--train-batch-size", "4", "--rollout-n", "2", "--max-steps", "2",
        "--max-prompt-length", "512", "--max-response-length", "32", "--report-to", "none",
        "--set", "micro_batch_size_per_gpu=2", "--set", "save_freq=2", "--set", "torch_compile=false",
        "--set", "gpu_memory_utilization=0.3",
    ])
    assert result.exit_code == 0, result.stdout + result.stderr
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["backend"] == "verl" and summary["steps"] == 2
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
