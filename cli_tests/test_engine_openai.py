"""The openai engine against a real ``transformers serve`` on 127.0.0.1 (the tiny model on the CPU) and against a
scripted fake server for retries, timeouts, several servers, the prefill and the API key."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fake_openai_server import ANSWER, FakeServer

from icdreason.engines.base import Prompt, SamplingParams
from icdreason.engines.openai_engine import OpenAIEngine, OpenAIOptions, normalize_base_url
from icdreason.errors import UsageError
from icdreason.redact import mask


def prompt(i: int, text: str, prefill: str = "<think>") -> Prompt:
    messages = [{"role": "system", "content": "Give one ICD-10-CM code."}, {"role": "user", "content": text}]
    return Prompt(note_id=f"n{i}", note=text, messages=messages, prefill=prefill)


def fast(**kw) -> OpenAIOptions:
    """Options with short waits, for tests."""
    return OpenAIOptions(**{"backoff": 0.01, "backoff_max": 0.05, "timeout": 5.0, **kw})


# -- a real `transformers serve` ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-serve"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_dir):
    """``transformers serve`` on a free port; it loads the model directory named in each request."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs fastapi and uvicorn (pip install 'transformers[serving]')")
    port = _free_port()
    cache = tmp_path_factory.mktemp("hf-cache")  # must exist, or /v1/models fails
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cli = Path(sys.executable).with_name("transformers")
    log = open(tmp_path_factory.mktemp("serve-log") / "serve.log", "w")
    proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: see {log.name}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not start within 120 s")
            time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_transformers_serve_with_the_prefill_falls_back_to_completions(served, tiny_dir):
    """The server rejects continue_final_message (422), so the engine renders the chat template itself and uses
    /v1/completions; greedy answers then equal the transformers engine's on the same model."""
    from icdreason.engines.hf import TransformersEngine

    prompts = [prompt(0, "chest pain"), prompt(1, "fever and cough for three days")]
    eng = OpenAIEngine(str(tiny_dir), OpenAIOptions(base_url=[served], concurrency=2))
    params = SamplingParams(max_new_tokens=8)
    gens = eng.generate(prompts, params)
    local = TransformersEngine(str(tiny_dir)).generate(prompts, params)
    for g, ref in zip(gens, local):
        assert g.error is None
        assert g.extra["prefill"] == "completions"
        assert g.texts == ref.texts
        assert g.tokens_in == ref.tokens_in and g.tokens_out == 8
    assert eng.describe()["prefill_modes"] == {served: "completions"}


def test_transformers_serve_samples_n_answers_without_a_prefill(served, tiny_dir):
    eng = OpenAIEngine(str(tiny_dir), OpenAIOptions(base_url=[served]))
    (g,) = eng.generate([prompt(0, "chest pain", prefill="")], SamplingParams(n=2, temperature=0.9, max_new_tokens=5))
    assert g.error is None and len(g.texts) == 2  # the server ignores n: the engine asked twice
    assert g.extra["prefill"] == "none" and g.extra["servers"] == [served, served]
    assert g.tokens_in > 0 and g.tokens_out == 10


# -- a scripted server ----------------------------------------------------------------------------------------------

def test_429_is_retried_500_and_timeouts_become_per_note_errors():
    with FakeServer(slow=1.5) as server:
        eng = OpenAIEngine("m", fast(base_url=[server.url], retries=2, timeout=0.5))
        started = time.monotonic()
        gens = eng.generate([prompt(0, "ok"), prompt(1, "ratelimit"), prompt(2, "broken"), prompt(3, "slow")],
                            SamplingParams(max_new_tokens=16))
        assert time.monotonic() - started < 10
    ok, limited, broken, slow = gens
    assert ok.texts == [ANSWER] and ok.tokens_in == 42 and ok.tokens_out == 11
    assert limited.texts == [ANSWER] and server.seen["ratelimit"] == 2
    assert broken.texts == [] and broken.error.startswith("HTTP 500") and "3 attempts" in broken.error
    assert server.seen["broken"] == 3
    assert slow.texts == [] and slow.error.startswith("timed out after 0.5s")


def test_a_server_that_is_down_is_an_error_per_note_not_a_crash():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    eng = OpenAIEngine("m", fast(base_url=[url], retries=1))
    gens = eng.generate([prompt(0, "a"), prompt(1, "b")], SamplingParams())
    assert all(g.error.startswith("connection error") and "2 attempts" in g.error for g in gens)


def test_two_servers_share_a_batch_and_one_failing_server_is_routed_around():
    with FakeServer() as one, FakeServer() as two:
        eng = OpenAIEngine("m", fast(base_url=[one.url, two.url], concurrency=2))
        gens = eng.generate([prompt(i, f"note {i}") for i in range(10)], SamplingParams())
        used = [g.extra["servers"][0] for g in gens]
        assert set(used) == {one.url, two.url}
        assert len(one.requests) + len(two.requests) == 10 and min(len(one.requests), len(two.requests)) >= 3
    down = f"http://127.0.0.1:{_free_port()}/v1"
    with FakeServer() as alive:
        eng = OpenAIEngine("m", fast(base_url=[down, alive.url], retries=3))
        gens = eng.generate([prompt(i, f"note {i}") for i in range(4)], SamplingParams())
        assert all(g.error is None and g.extra["servers"] == [alive.url] for g in gens)


def test_the_prefill_is_continued_and_n_is_topped_up_with_new_seeds():
    with FakeServer(choices_per_request=1) as server:
        eng = OpenAIEngine("m", fast(base_url=[server.url]))
        (g,) = eng.generate([prompt(0, "note")], SamplingParams(n=3, temperature=0.9, top_k=20, seed=7))
    assert len(g.texts) == 3 and g.tokens_out == 33 and g.tokens_in == 42
    bodies = [r["body"] for r in server.requests]
    assert [b["seed"] for b in bodies] == [7, 8, 9] and [b["n"] for b in bodies] == [3, 2, 1]
    first = bodies[0]
    assert first["messages"][-1] == {"role": "assistant", "content": "<think>"}
    assert first["continue_final_message"] is True and first["add_generation_prompt"] is False
    assert first["top_k"] == 20 and first["temperature"] == 0.9 and first["model"] == "m"


def test_a_server_rejecting_continue_falls_back_to_completions_with_a_tokenizer(tmp_path):
    from tiny_model import build_tokenizer

    build_tokenizer(tmp_path)
    with FakeServer(reject_continue=True) as server:
        eng = OpenAIEngine("m", fast(base_url=[server.url], tokenizer=str(tmp_path)))
        (g,) = eng.generate([prompt(0, "note")], SamplingParams())
    assert g.texts == [ANSWER] and g.extra["prefill"] == "completions"
    last = server.requests[-1]
    assert last["path"] == "/v1/completions"
    assert last["body"]["prompt"].endswith("<|im_start|>assistant\n<think>")


def test_without_a_tokenizer_the_prefill_is_dropped_and_said_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the model name is not a local tokenizer and is not looked up
    with FakeServer(reject_continue=True) as server:
        eng = OpenAIEngine("no/such-model", fast(base_url=[server.url]))
        (g,) = eng.generate([prompt(0, "note")], SamplingParams())
    assert g.error is None and g.extra["prefill"] == "drop"
    assert server.requests[-1]["body"]["messages"][-1]["role"] == "user"


def test_reasoning_content_goes_back_in_front_of_the_closing_think_tag():
    with FakeServer() as server:
        (g,) = OpenAIEngine("m", fast(base_url=[server.url])).generate([prompt(0, "reasoning")], SamplingParams())
    assert g.texts == ["lumbar disc disorder</think><diagnosis>M5116</diagnosis>"]


def test_the_api_key_is_sent_but_never_shown(monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "sk-secret-123")
    with FakeServer() as server:
        eng = OpenAIEngine("m", fast(base_url=[server.url], api_key_env="MY_SERVER_KEY"))
        eng.generate([prompt(0, "note")], SamplingParams())
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
    shown = repr(eng.describe()) + repr(eng.options) + repr(vars(eng.options))
    assert "sk-secret" not in shown and "MY_SERVER_KEY" in shown
    monkeypatch.delenv("MY_SERVER_KEY")
    with pytest.raises(UsageError, match="MY_SERVER_KEY"):
        OpenAIEngine("m", fast(api_key_env="MY_SERVER_KEY"))


def test_constrain_asks_the_server_for_a_billable_code_regex(kb):
    with FakeServer() as server:
        eng = OpenAIEngine("m", fast(base_url=[server.url]), kb=kb)
        eng.generate([prompt(0, "note")], SamplingParams(constrain=True))
    from icdreason.engines.constrain import billable_code_strings, diagnosis_regex

    regex = server.requests[0]["body"]["structured_outputs"]["regex"]
    # the default code form accepts both M5116 (the authors' released models) and M51.16 (the bundled prompt)
    assert regex == diagnosis_regex("billable", billable_code_strings(kb, form="either"), prefill="<think>",
                                    form="either")
    assert re.fullmatch(regex, "x</think><diagnosis>M5116</diagnosis>")
    assert re.fullmatch(regex, "x</think><diagnosis>M51.16</diagnosis>")
    assert not re.fullmatch(regex, "x</think><diagnosis>M51.1</diagnosis>")
    assert regex.startswith("([^<]|<[^/d<])*</think>") and regex.endswith("</diagnosis>[ \t\r\n]*")


def test_the_model_is_discovered_and_aliases_expand():
    with FakeServer() as server:
        eng = OpenAIEngine(None, fast(base_url=[server.url]))
        eng.generate([prompt(0, "note")], SamplingParams())
    assert eng.model == "fake-model" and server.requests[0]["body"]["model"] == "fake-model"
    assert OpenAIEngine("DeepICD-R1-7B", fast()).model == "DATEXIS/DeepICD-R1-7B"
    assert normalize_base_url("http://host:8000/") == "http://host:8000/v1"
    assert normalize_base_url("https://h/api/v1") == "https://h/api/v1"
    assert mask("http://user:pw@host:1/v1") == "http://***@host:1/v1"
    with pytest.raises(UsageError, match="not an http"):
        OpenAIOptions(base_url="localhost:8000")
    assert OpenAIOptions.from_dict({"base_url": "http://a:1/v1"}).base_url == ["http://a:1/v1"]


def test_predict_cli_over_two_servers(kb_file, tmp_path, runner):
    import json

    from icdreason.cli import app

    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(6):
        (notes / f"note{i}.txt").write_text(f"Chief complaint: low back pain radiating to the leg, day {i}.")
    out = tmp_path / "out.jsonl"
    with FakeServer() as one, FakeServer() as two:
        result = runner.invoke(app, ["predict", str(notes), "--engine", "openai", "--model", "DeepICD-R1-7B",
                                     "--base-url", one.url, "--base-url", two.url, "--retries", "1",
                                     "--concurrency", "2", "--out", str(out), "-q",
                                     "--prompt-template", "deepicd_r1"])  # not the profile's (fetched) prompt
        assert result.exit_code == 0, result.stderr
        assert one.requests and two.requests
        assert {r["body"]["model"] for r in one.requests + two.requests} == {"DATEXIS/DeepICD-R1-7B"}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 6
    for r in records:
        assert r["engine"] == "openai" and r["code"] == "M51.16" and r["status"] == "billable"
        assert r["format_ok"] is True and r["tokens_in"] == 42 and r["tokens_out"] == 11
