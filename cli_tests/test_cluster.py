"""`predict --ray` and `distill --ray` on a local 2-CPU Ray (started once per session): the records of a local run,
resume after the driver is killed with SIGKILL, and a note that kills its worker recorded as an error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cluster_support import EXAMPLES, CrashingEngine, note_table, ray_cluster  # noqa: F401 - fixtures
from predict_support import ICDREASON

from icdreason.cli import app
from icdreason.records import read_predictions

pytest.importorskip("ray", reason="Ray is not installed (pip install 'icdreason[ray]')")

#: Fields that differ between any two runs.
RUN_FIELDS = {"run_id", "seconds"}


def predict(runner, *args: str):
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def by_id(path: Path) -> dict[str, dict]:
    rows = read_predictions(path)
    assert len({r["id"] for r in rows}) == len(rows)
    return {r["id"]: {k: v for k, v in r.items() if k not in RUN_FIELDS} for r in rows}


def test_retriever_on_ray_writes_the_records_of_a_local_run(ray_cluster, use_kb, runner, tmp_path):
    ids = note_table(tmp_path / "notes.jsonl", 40)
    predict(runner, str(tmp_path / "notes.jsonl"), "-o", str(tmp_path / "local.jsonl"), "-q")
    shown = predict(runner, str(tmp_path / "notes.jsonl"), "-o", str(tmp_path / "ray.parquet"), "--batch-size", "8",
                    "--ray", "local", "--replicas", "2")
    local, on_ray = by_id(tmp_path / "local.jsonl"), by_id(tmp_path / "ray.parquet")
    assert sorted(on_ray) == ids
    assert on_ray == local  # every field of every record, codes and evidence included
    assert {r["engine"] for r in on_ray.values()} == {"retriever"}
    assert "2 replica(s) x 0 GPU(s) on local" in shown.stdout and "notes predicted" in shown.stdout


def test_transformers_engine_on_ray_gives_the_local_answers(ray_cluster, use_kb, runner, tmp_path):
    from test_engine_hf import scaled_tiny_model

    model = scaled_tiny_model(tmp_path / "tiny")
    note_table(tmp_path / "notes.jsonl", 4)
    args = [str(tmp_path / "notes.jsonl"), "--engine", "transformers", "--model", str(model), "--device", "cpu",
            "--max-new-tokens", "12", "-E", "batch_size=1", "--keep-raw", "-q"]
    predict(runner, *args, "-o", str(tmp_path / "local.jsonl"))
    predict(runner, *args, "-o", str(tmp_path / "ray.jsonl"), "--ray", "local", "--batch-size", "2")
    local, on_ray = by_id(tmp_path / "local.jsonl"), by_id(tmp_path / "ray.jsonl")
    assert on_ray == local  # greedy decoding: the same raw answers, traces, codes and token counts
    assert all(r["raw"] and r["tokens_out"] > 0 for r in on_ray.values())


def test_killing_the_driver_then_resuming_loses_and_repeats_nothing(ray_cluster, retriever_kb, runner, monkeypatch,
                                                                    tmp_path):
    """The driver is a separate `icdreason predict --ray HOST:PORT` process, killed with SIGKILL after its first
    batch of records is on disk; the same command with --resume (run here) finishes the job."""
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    env.pop("RAY_ADDRESS", None)
    ids = note_table(tmp_path / "notes.jsonl", 300)
    out = tmp_path / "pred.jsonl"
    args = ["predict", str(tmp_path / "notes.jsonl"), "-o", str(out), "--batch-size", "10", "--ray", ray_cluster,
            "-q"]
    proc = subprocess.Popen([str(ICDREASON), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    before = read_predictions(out)
    assert 0 < len(before) < len(ids)
    monkeypatch.setenv("ICDREASON_KB", str(retriever_kb))
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.stdout + result.stderr
    after = read_predictions(out)
    assert sorted(r["id"] for r in after) == ids  # 0 lost, 0 duplicated
    assert after[: len(before)] == before  # what was written before the kill is kept as it was
    assert {r["run_id"] for r in after} == {before[0]["run_id"]}


def test_a_note_that_kills_its_worker_gets_an_error_record(ray_cluster, kb, tmp_path):
    """Ray restarts the dead worker and retries (here once); the batch that keeps killing it is run one note at a
    time, the culprit is recorded with the reason, and every other note is predicted."""
    from icdreason.cluster import RayEngine, plan_for, predict_on_ray
    from icdreason.notes import read_notes
    from icdreason.predict import PredictSettings, run_predict

    note_table(tmp_path / "notes.jsonl", 8)
    notes = read_notes([str(tmp_path / "notes.jsonl")])
    options = CrashingEngine.Options(crash_on=["note0005"])
    plan = plan_for(CrashingEngine, None, options, address="local", batch_size=4)
    plan.max_retries = 1
    out = tmp_path / "pred.jsonl"
    with RayEngine(CrashingEngine, None, options, kb, plan, progress_bars=False) as engine:
        summary = run_predict(notes, engine=engine, kb=kb, out=str(out), settings=PredictSettings(batch_size=4),
                              runner=predict_on_ray)
        assert engine.restarts >= 2  # the batch of four, then the note alone
    records = {r["id"]: r for r in read_predictions(out)}
    assert len(records) == 8 and summary.predicted == 8 and summary.errors == 1
    culprit = records.pop("note0005")
    assert culprit["code"] is None and "the Ray worker died on this note 2 times" in culprit["error"]
    assert {(r["code"], r["status"], r["error"]) for r in records.values()} == {("I10", "billable", None)}


def test_distill_on_ray_keeps_and_rejects_what_a_local_run_does(ray_cluster, use_kb, runner, tmp_path):
    golds = {"copd": "J44.1", "dka": "E11.10", "pneumonia": "J18.9", "sepsis_ecoli": "A41.51", "nstemi": "I21.4",
             "appendicitis": "K35.80"}
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": name, "note": (EXAMPLES / f"{name}.txt").read_text(), "code": code})
                            + "\n" for name, code in golds.items()))
    logs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "local", "--replicas", "2"])):
        out = tmp_path / f"{name}.parquet"
        result = runner.invoke(app, ["distill", str(data), "--teacher", "bm25", "--engine", "retriever", "-o",
                                     str(out), "--min-words", "1", "--batch-size", "2", *extra])
        assert result.exit_code == 0, result.stdout + result.stderr
        log = [json.loads(line) for line in open(tmp_path / f"{name}.parquet.progress.jsonl")]
        logs[name] = {r["id"]: (r["kept"], r.get("reason"), r.get("trace")) for r in log}
    assert sorted(logs["ray"]) == sorted(golds)
    assert logs["ray"] == logs["local"]  # the same traces kept, the same reasons for the others


def test_the_vllm_processor_has_fixed_replicas_tensor_parallel_gpus_and_capped_restarts(ray_cluster, tmp_path):
    """The processor ``--engine vllm --ray`` builds (ray.data.llm needs torch, transformers and the model's tokenizer
    on the driver, not vLLM nor a GPU): what each of its stages asks Ray for."""
    pytest.importorskip("ray.data.llm")
    from tiny_model import build_tiny_model

    from icdreason.cluster import plan_for
    from icdreason.cluster.vllm_processor import ENGINE_STAGE, build_processor
    from icdreason.engines.registry import engine_class
    from icdreason.engines.vllm_engine import VllmOptions

    model = str(build_tiny_model(tmp_path / "tiny"))
    for tp in (1, 2):
        options = VllmOptions(tensor_parallel_size=tp, max_model_len=2048)
        plan = plan_for(engine_class("vllm", check_requirements=False), model, options, address="local", replicas=2,
                        batch_size=16)
        processor = build_processor(model, options, plan, batch_size=16)
        assert processor.list_stage_names() == [ENGINE_STAGE]  # we render and tokenise; vLLM detokenises
        kwargs = processor.get_stage_by_name(ENGINE_STAGE).get_dataset_map_batches_kwargs(16, "__data")
        assert (kwargs["compute"].min_size, kwargs["compute"].max_size) == (2, 2)
        assert kwargs["batch_size"] == 16 and kwargs["max_restarts"] == kwargs["max_task_retries"] == 3
        engine_kwargs = kwargs["fn_constructor_kwargs"]["engine_kwargs"]
        assert engine_kwargs["tensor_parallel_size"] == tp and engine_kwargs["max_model_len"] == 2048
        if tp == 1:  # one GPU on the actor itself
            assert kwargs["num_gpus"] == 1 and engine_kwargs["distributed_executor_backend"] == "uni"
        else:  # vLLM's Ray executor places tp workers in a placement group of one GPU each
            assert kwargs["num_gpus"] == 0 and engine_kwargs["distributed_executor_backend"] == "ray"
            assert callable(kwargs["ray_remote_args_fn"])


def test_a_vllm_run_on_a_cluster_without_gpus_stops_before_it_starts(ray_cluster, use_kb, runner, tmp_path):
    """Ray would wait for ever for a vLLM replica it cannot place: the plan is checked against the cluster first."""
    pytest.importorskip("ray.data.llm")
    result = runner.invoke(app, ["predict", str(EXAMPLES / "copd.txt"), "--engine", "vllm", "--model", "m",
                                 "--replicas", "2", "--ray", "local", "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: the Ray cluster (local) has 0 GPU(s) but the plan needs 2 (2 replica(s) x 1)")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.gpu
def test_vllm_on_ray_predicts_on_a_gpu(ray_cluster, use_kb, runner, tmp_path):
    """Needs CUDA, vLLM and ray[llm]: two sampled answers per note through ray.data.llm, one record per note."""
    pytest.importorskip("vllm")
    from tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", hidden_size=256)  # head_dim 64: what GPU attention kernels take
    ids = note_table(tmp_path / "notes.jsonl", 6)
    predict(runner, str(tmp_path / "notes.jsonl"), "-o", str(tmp_path / "ray.jsonl"), "--engine", "vllm", "--model",
            str(model), "--n", "2", "--temperature", "0.9", "--max-new-tokens", "48", "--max-model-len", "1024",
            "--gpu-memory-utilization", "0.2", "-E", "enforce_eager=true", "--keep-raw", "--ray", "local", "-q")
    records = read_predictions(tmp_path / "ray.jsonl")
    assert sorted(r["id"] for r in records) == ids
    for r in records:
        assert r["error"] is None and len(r["raw"]) == 2 and r["tokens_in"] > 0 and r["tokens_out"] > 0
        assert r["engine"] == "vllm" and r["uses_llm"] is True
