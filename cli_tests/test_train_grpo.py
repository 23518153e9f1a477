"""`icdreason train grpo --backend trl` on the CPU: a few GRPO steps with the real reward functions.

The policy is first taught the answer format with `train sft` (so that rewards and the judge have something to
score); the judge is a small local OpenAI-compatible server that answers {"score": 4}.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tiny_model import build_tiny_model
from train_helpers import write_rl_parquet, write_sft_parquet, write_template

from icdreason.cli import app


class _Judge(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._send({"object": "list", "data": [{"id": "fake-judge"}]})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Judge.requests.append(body)
        self._send({"choices": [{"message": {"role": "assistant", "content": '{"score": 4}'}}]})

    def _send(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("grpo")


@pytest.fixture(scope="module")
def template(workdir) -> Path:
    return write_template(workdir / "template.txt")


@pytest.fixture(scope="module")
def rl_file(workdir, template) -> Path:
    return write_rl_parquet(workdir / "rl.parquet", rows=16, template=template)


@pytest.fixture(scope="module")
def policy(workdir, template) -> Path:
    """The tiny model after a short SFT, so that most of its answers have the right format."""
    from typer.testing import CliRunner

    tiny = build_tiny_model(workdir / "tiny")
    data = write_sft_parquet(workdir / "sft.parquet", rows=240, template=template)
    out = workdir / "sft"
    result = CliRunner().invoke(app, [
        "train", "sft", "--model", str(tiny), "--train", str(data), "-o", str(out), "--report-to", "none",
        "--epochs", "2", "--batch-size", "8", "--per-device-batch-size", "8", "--lr", "1e-2", "--warmup-steps", "5",
        "--max-length", "256", "--set", "save_steps=1000"])
    assert result.exit_code == 0, result.stderr
    return out


# A few small steps: 4 prompts x 4 responses, sampled cooler than the model card's 0.9 so that the 40k-parameter
# policy keeps to the format it learned.
SMALL = ["--train-batch-size", "4", "--rollout-n", "4", "--max-steps", "3", "--max-response-length", "32",
         "--lr", "1e-4", "--set", "micro_batch_size_per_gpu=8", "--set", "warmup_steps=0", "--set", "save_freq=3",
         "--set", "temperature=0.3"]


def test_trl_grpo_logs_every_reward_component(runner, kb_file, policy, rl_file, judge_url, workdir):
    out = workdir / "grpo"
    result = runner.invoke(app, ["train", "grpo", "--backend", "trl", "--model", str(policy), "--train",
                                 str(rl_file), "-o", str(out), *SMALL,
                                 "--reward-preset", "icdreason", "--reward", "format,outcome,length,trace,judge",
                                 "--judge-url", judge_url, "--judge-model", "fake-judge"])
    assert result.exit_code == 0, result.stdout + result.stderr
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["backend"] == "trl" and summary["steps"] == 3
    metrics = summary["metrics"]
    for component in ("format", "outcome", "length", "trace", "judge"):
        assert f"rewards/{component}/mean" in metrics, component
        assert f"rewards/{component}/mean" in result.stdout  # the final summary shows them too
    # Each component is a TensorBoard scalar per step. Answers with a code and a trace go to the judge, which pays
    # 0.05 x its score 4 for each.
    logged = _tensorboard_scalars(out / "logs")
    for component in ("format", "outcome", "length", "trace", "judge"):
        assert len(logged[f"train/rewards/{component}/mean"]) == 3, component
    assert max(logged["train/rewards/format/mean"]) > 0
    assert max(logged["train/rewards/length/mean"]) < 0  # a per-character malus
    assert _Judge.requests and _Judge.requests[0]["model"] == "fake-judge"
    assert max(logged["train/rewards/judge/mean"]) > 0
    # The reward settings the run used are kept next to the model, and the model loads like any other.
    reward = (out / "reward.yaml").read_text()
    assert "judge_url: " + judge_url in reward and "- judge" in reward and "preset: icdreason" in reward
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    assert (out / "checkpoints" / "checkpoint-3").is_dir()


def _tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = folder.rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_ablation_trains_without_the_format_reward(runner, policy, rl_file, workdir):
    out = workdir / "no-format"
    result = runner.invoke(app, ["train", "grpo", "--backend", "trl", "--model", str(policy), "--train",
                                 str(rl_file), "-o", str(out), *SMALL, "--no-format", "--report-to", "none",
                                 "--max-steps", "1"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((out / "training_summary.json").read_text())["metrics"]
    assert "rewards/format/mean" not in metrics and "rewards/outcome/mean" in metrics


def test_unreachable_judge_stops_before_training(runner, policy, rl_file, workdir):
    out = workdir / "no-judge"
    result = runner.invoke(app, ["train", "grpo", "--backend", "trl", "--model", str(policy), "--train",
                                 str(rl_file), "-o", str(out), *SMALL, "--reward", "format,outcome,judge",
                                 "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "j"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "judge at http://127.0.0.1:9/v1 is unreachable" in result.stderr
    assert not out.exists()


def test_the_newest_verl_checkpoint_becomes_the_output_model(policy, workdir):
    """After a verl run, global_step_N/actor/huggingface (verl's hf_model export) is copied into the output folder."""
    import shutil

    from transformers import AutoModelForCausalLM

    from icdreason.training.grpo_verl import export_verl_model

    out = workdir / "verl-run"
    for step in (2, 4):
        hf = out / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface"
        hf.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "chat_template.jinja"):
            shutil.copy(policy / name, hf / name)
    (out / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("4")
    assert export_verl_model(out) == 4
    assert (out / "generation_config.json").is_file()
    AutoModelForCausalLM.from_pretrained(out)
