"""`--ray` without a cluster: the addresses it takes, the plan `--dry-run` prints, the ray.data.llm config the vLLM
path builds, how its output rows become generations, and the one-line messages when something is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from icdreason.cli import app
from icdreason.cluster import RAY_INSTALL_HINT, RayPlan, parse_address, plan_for
from icdreason.engines.base import SamplingParams
from icdreason.engines.hf import TransformersOptions
from icdreason.engines.registry import engine_class
from icdreason.engines.vllm_engine import VllmOptions
from icdreason.errors import DependencyError, UsageError

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "notes" / "copd.txt")


def test_addresses():
    assert parse_address("local") == "local" and parse_address("auto") == "auto"
    assert parse_address("10.0.0.1:6379") == "10.0.0.1:6379"
    assert parse_address("head-0.ray.svc:6379") == "head-0.ray.svc:6379"
    assert parse_address(None, environ={}) == "local"
    assert parse_address(None, environ={"RAY_ADDRESS": "10.0.0.1:6379"}) == "auto"  # inside `ray job submit`
    with pytest.raises(UsageError, match="Ray Client .* cannot run Ray Data pipelines.*ray job submit"):
        parse_address("ray://10.0.0.1:10001")
    with pytest.raises(UsageError, match="expected local, auto or HOST:PORT"):
        parse_address("notes/a.txt")


def test_a_vllm_replica_spans_tensor_parallel_gpus():
    plan = plan_for(engine_class("vllm", check_requirements=False), "DeepICD-R1-7B",
                    VllmOptions(tensor_parallel_size=2), address="auto", replicas=3, batch_size=64)
    assert (plan.runner, plan.gpus_per_replica, plan.gpus, plan.tensor_parallel_size) == ("vllm processor", 2, 6, 2)
    plan.check({"CPU": 64, "GPU": 8})
    with pytest.raises(DependencyError, match=r"has 4 GPU\(s\) but the plan needs 6 \(3 replica\(s\) x 2\)"):
        plan.check({"CPU": 64, "GPU": 4})
    with pytest.raises(DependencyError, match="has 0 GPU"):  # a GPU-less cluster: Ray would wait for ever
        plan.check({"CPU": 64})


def test_other_engines_run_as_an_actor_pool():
    hf = engine_class("transformers")
    retriever = engine_class("retriever")
    assert plan_for(hf, "m", TransformersOptions(device="cuda"), address="local").gpus_per_replica == 1
    assert plan_for(hf, "m", TransformersOptions(device="cpu"), address="local").gpus_per_replica == 0
    auto = plan_for(hf, "m", TransformersOptions(), address="local", replicas=2)
    assert auto.gpus_per_replica is None and auto.resolve({"CPU": 8, "GPU": 2}).gpus_per_replica == 1
    assert plan_for(hf, "m", TransformersOptions(), address="local", replicas=2).resolve({"CPU": 8, "GPU": 1}) \
        .gpus_per_replica == 0
    plan = plan_for(retriever, None, retriever.Options(), address="local", replicas=2, cpus_per_replica=0.5)
    assert (plan.runner, plan.gpus, plan.cpus_per_replica) == ("actor pool", 0, 0.5)
    with pytest.raises(DependencyError, match=r"has 1 CPU\(s\) but the plan needs 2"):
        plan_for(retriever, None, retriever.Options(), address="local", replicas=2).check({"CPU": 1})
    with pytest.raises(UsageError, match="--replicas must be at least 1"):
        RayPlan(address="local", engine="retriever", model=None, runner="actor pool", replicas=0)


def test_dry_run_prints_the_plan_and_the_processor_config(runner):
    result = runner.invoke(app, ["predict", EXAMPLE, "--engine", "vllm", "--model", "Qwen/Qwen2.5-7B-Instruct",
                                 "--tensor-parallel-size", "2", "--max-model-len", "4096", "--replicas", "3",
                                 "--batch-size", "64", "--ray", "10.0.0.1:6379", "--dry-run"])
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = yaml.safe_load(result.stdout)
    assert doc["ray"] == {"address": "10.0.0.1:6379", "engine": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct",
                          "runner": "vllm processor", "replicas": 3, "gpus_per_replica": 2, "cpus_per_replica": 1.0,
                          "tensor_parallel_size": 2, "batch_size": 64, "max_retries": 3, "gpus_total": 6}
    assert doc["notes"] == 1 and "dry run: nothing was started" in result.stderr
    assert "note: --batch-size 64 is larger than the 1 note(s): they make one batch, so 2 of the 3 replicas get no " \
           "work" in result.stderr
    pytest.importorskip("ray.data.llm")
    config = doc["vllm_processor"]
    assert config["concurrency"] == [3, 3]  # a fixed number of replicas, not an autoscaling range
    assert config["engine_kwargs"]["tensor_parallel_size"] == 2 and config["engine_kwargs"]["max_model_len"] == 4096
    assert (config["chat_template_stage"], config["tokenize_stage"], config["detokenize_stage"]) == (False,) * 3
    assert config["should_continue_on_error"] is True and config["batch_size"] == 64


def test_distill_dry_run_prints_the_teachers_plan(runner, tmp_path):
    result = runner.invoke(app, ["distill", str(tmp_path / "rl.parquet"), "--teacher", "Qwen/Qwen2.5-72B-Instruct",
                                 "--engine", "transformers", "-E", "device=cuda", "--ray", "auto", "--replicas", "4",
                                 "--batch-size", "8", "--dry-run"])
    assert result.exit_code == 0, result.stdout + result.stderr
    plan = yaml.safe_load(result.stdout)["ray"]
    assert (plan["runner"], plan["replicas"], plan["gpus_per_replica"], plan["batch_size"]) == ("actor pool", 4, 1, 8)


def test_ray_only_flags_and_bad_addresses_are_one_line_errors(runner):
    result = runner.invoke(app, ["predict", EXAMPLE, "--replicas", "2"])
    assert result.exit_code == 2 and result.stderr.strip() == "error: --replicas only apply with --ray"
    result = runner.invoke(app, ["predict", EXAMPLE, "--ray", "ray://head:10001"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "ray job submit" in result.stderr


def test_without_ray_the_flag_says_how_to_install_it(tmp_path):
    """Ray hidden from the interpreter: `--ray local` stops with one line naming the extra to install."""
    code = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from icdreason.cli import main\n"
        "sys.argv = ['icdreason', 'predict', sys.argv[1], '--ray', 'local', '-o', sys.argv[2]]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, EXAMPLE, str(tmp_path / "out.jsonl")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {RAY_INSTALL_HINT}"
    assert not (tmp_path / "out.jsonl").exists()


# -- the vLLM processor's rows -----------------------------------------------------------------------------------
def test_each_sample_is_one_row_with_its_own_seed():
    from icdreason.cluster.vllm_processor import sampling_row, samples_per_note

    sampled = SamplingParams(n=4, temperature=0.9, top_p=0.95, max_new_tokens=1024, seed=7)
    assert samples_per_note(sampled) == 4 and samples_per_note(SamplingParams(n=4, temperature=0)) == 1
    rows = [sampling_row(sampled, sample=k, max_tokens=900, regex="x") for k in range(4)]
    assert [r["seed"] for r in rows] == [7, 8, 9, 10]
    assert rows[0] == {"n": 1, "temperature": 0.9, "top_p": 0.95, "max_tokens": 900, "seed": 7,
                       "structured_outputs": {"regex": "x"}}
    assert "guided_decoding" in sampling_row(sampled, sample=0, max_tokens=9, regex="x", structured_key="guided_decoding")
    assert sampling_row(SamplingParams(seed=None), sample=0, max_tokens=9, regex=None)["seed"] is None


def test_rows_come_back_as_one_generation_per_note():
    from icdreason.cluster.vllm_processor import SampleCollector

    def row(seq, sample, text, out, max_tokens=32):
        return {"seq": seq, "sample": sample, "text": text, "tokens_in": 50, "tokens_out": out,
                "max_tokens": max_tokens, "seconds": 0.5, "__inference_error__": ""}

    sampled = SampleCollector(SamplingParams(n=2, temperature=0.9))
    assert sampled.add(row(3, 1, "b", 32)) is None  # waits for the other sample
    assert sampled.add(row(0, 0, "x", 5)) is None
    seq, gen = sampled.add(row(3, 0, "a", 10))
    assert seq == 3 and gen.texts == ["a", "b"] and gen.tokens_out == 42 and gen.tokens_in == 50
    assert gen.extra["finish_reasons"] == ["stop", "length"]  # all 32 tokens used: cut
    greedy = SampleCollector(SamplingParams(n=3, temperature=0))
    seq, gen = greedy.add(row(1, 0, "a", 4))
    assert gen.texts == ["a", "a", "a"] and gen.tokens_out == 12  # one answer stands for the three samples
    failed = {"seq": 2, "sample": 0, "__inference_error__": "Prompt length of 5000 is longer than 4096",
              "num_input_tokens": 0, "prompt": "…"}  # an error row skips the postprocess
    seq, gen = greedy.add(failed)
    assert seq == 2 and gen.texts == [] and gen.error == "vLLM failed: Prompt length of 5000 is longer than 4096"
