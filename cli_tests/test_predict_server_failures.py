"""`predict` with the openai engine against servers that fail: dead, answering 500, trickling, answering odd shapes,
echoing secrets. Every server is started here on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import sys
import time

import duckdb
import pytest
from fake_openai_server import FakeServer

from icdreason.cli import app
from icdreason.engines.base import Prompt, SamplingParams
from icdreason.engines.openai_engine import OpenAIEngine, OpenAIOptions
from icdreason.records import read_predictions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notes(path, texts: list[str]) -> list[str]:
    ids = [f"n{i:03d}" for i in range(len(texts))]
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, texts)))
    return ids


def _prompt(text: str) -> Prompt:
    return Prompt(note_id="n", note=text, messages=[{"role": "user", "content": text}], prefill="<think>")


# -- item 5: a dead server stops the run; --resume retries error records ------------------------------------------
@pytest.mark.parametrize("kind", ["nothing listening", "answers 500"])
def test_a_dead_server_stops_the_run_with_one_line_naming_the_url(runner, use_kb, tmp_path, kind):
    notes = tmp_path / "notes.jsonl"
    _notes(notes, ["low back pain radiating to the leg"] * 200)
    out = tmp_path / "pred.jsonl"
    server = FakeServer(status=500) if kind == "answers 500" else None
    port = server.httpd.server_address[1] if server else _free_port()
    url = f"http://alice:hunter2pw@127.0.0.1:{port}/v1"
    started = time.monotonic()
    try:
        if server:
            server.__enter__()
        result = runner.invoke(app, ["predict", str(notes), "--engine", "openai", "--model", "m", "--base-url", url,
                                     "--retries", "0", "--out", str(out), "-q"])
    finally:
        if server:
            server.__exit__(None, None, None)
    assert time.monotonic() - started < 20
    assert result.exit_code == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: stopped after 5 requests in a row failed")
    assert f"http://***@127.0.0.1:{port}/v1" in last and "--resume" in last
    assert "hunter2pw" not in result.stderr + result.stdout
    assert read_predictions(out) == []  # no note was answered: nothing is written as if it had been


@pytest.mark.parametrize("target", ["pred.jsonl", "pred.csv", "pred.parquet", "db"])
def test_resume_retries_the_notes_whose_record_is_an_error(runner, use_kb, tmp_path, target):
    notes = tmp_path / "notes.jsonl"
    ids = _notes(notes, ["back pain", "back pain broken", "back pain", "back pain broken", "back pain", "back pain"])
    where = ["--db", str(tmp_path / "log.duckdb")] if target == "db" else ["--out", str(tmp_path / target)]
    with FakeServer() as server:
        args = ["predict", str(notes), "--engine", "openai", "--model", "m", "--base-url", server.url, "--retries", "0",
                "--batch-size", "2", "-q", *where]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.stderr
        kept = runner.invoke(app, [*args, "--resume", "--no-retry-errors"])
        assert kept.exit_code == 0, kept.stderr
        server.healed = True
        resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "6 already there" in " ".join(kept.stderr.split()) and "retried" not in kept.stderr
    assert "2 notes whose records were errors predicted again" in " ".join(resumed.stderr.split())
    path = tmp_path / ("log.duckdb" if target == "db" else target)
    rows = read_predictions(path)
    assert sorted(r["id"] for r in rows) == ids  # replaced, not duplicated
    assert [r["id"] for r in rows][-2:] == ["n001", "n003"] and all(r["error"] is None for r in rows)
    assert {r["code"] for r in rows} == {"M51.16"}
    if target == "db":
        con = duckdb.connect(str(path), read_only=True)
        assert con.execute("SELECT status, notes, sessions FROM runs").fetchall() == [("finished", 6, 3)]
        con.close()


def test_the_default_server_is_named_before_the_run(runner, use_kb, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("")  # an empty note: nothing is sent
    result = runner.invoke(app, ["predict", str(empty), "--engine", "openai", "--model", "m", "-q"])
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "server: http://127.0.0.1:8000/v1 (the default: no --base-url and no OPENAI_BASE_URL)" in said
    monkeypatch.setenv("OPENAI_BASE_URL", "http://bob:pw@10.0.0.7:9000/v1")
    result = runner.invoke(app, ["predict", str(empty), "--engine", "openai", "--model", "m", "-q"])
    assert "server: http://***@10.0.0.7:9000/v1 (from OPENAI_BASE_URL)" in " ".join(result.stderr.split())


# -- item 6: content that is not a string ---------------------------------------------------------------------------
def test_content_that_is_not_a_string_is_handled_per_note(runner, use_kb, tmp_path):
    with FakeServer() as server:
        eng = OpenAIEngine("m", OpenAIOptions(base_url=[server.url], retries=0))
        number, parts, null = eng.generate([_prompt(f"note @content:{shape} x") for shape in ("number", "parts", "null")],
                                           SamplingParams())
        assert number.texts == [] and number.error == f"{server.url} answered with content of type int, not text"
        assert parts.texts == ["disc disorder</think><diagnosis>M5116</diagnosis>"] and parts.error is None
        assert null.texts == ["lumbar disc disorder, the answer was cut here</think>"] and null.error is None
        notes = tmp_path / "notes.jsonl"
        _notes(notes, [f"low back pain @content:{shape} radiating" for shape in ("number", "parts", "null")]
               + ["low back pain"])
        out = tmp_path / "pred.jsonl"
        result = runner.invoke(app, ["predict", str(notes), "--engine", "openai", "--model", "m", "--base-url",
                                     server.url, "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    rows = {r["id"]: r for r in read_predictions(out)}
    assert rows["n000"]["error"].endswith("content of type int, not text") and rows["n000"]["status"] == "no_output"
    assert rows["n001"]["code"] == "M51.16" and rows["n003"]["code"] == "M51.16"
    assert rows["n002"]["status"] == "no_output" and rows["n002"]["trace"].startswith("lumbar disc disorder")


# -- item 7: --timeout is a total deadline ------------------------------------------------------------------------
def test_the_timeout_is_a_deadline_for_the_whole_request():
    with FakeServer(trickle=0.05) as server:  # a 300-byte answer, one byte every 50 ms: 15 s, every read succeeds
        eng = OpenAIEngine("m", OpenAIOptions(base_url=[server.url], retries=0, timeout=1.0))
        started = time.monotonic()
        (gen,) = eng.generate([_prompt("note")], SamplingParams())
        took = time.monotonic() - started
    assert gen.texts == [] and gen.error.startswith("timed out after 1s")
    assert took < 3


# -- item 8: credentials masked, the API key scrubbed from what servers say ----------------------------------------
def test_credentials_and_the_api_key_are_never_stored_or_printed(runner, use_kb, tmp_path, monkeypatch):
    notes = tmp_path / "notes.jsonl"
    _notes(notes, ["back pain"])
    basic = base64.b64encode(b"alice:hunter2pw").decode()
    stored = ""
    for case in ("password", "key"):
        out, db = tmp_path / f"{case}.jsonl", tmp_path / f"{case}.duckdb"
        with FakeServer(status=401) as server:  # its 401 body repeats the Authorization header it was sent
            url = server.url.replace("http://", "http://alice:hunter2pw@") if case == "password" else server.url
            monkeypatch.setenv("OPENAI_API_KEY", "sk-topsecret-999")
            args = ["predict", str(notes), "--engine", "openai", "--model", "m", "--base-url", url, "--retries", "0",
                    "--out", str(out), "--db", str(db)]
            monkeypatch.setattr(sys, "argv", ["icdreason", *args])  # the command line the run log keeps
            result = runner.invoke(app, args)
        assert result.exit_code == 0, result.stderr
        (row,) = read_predictions(out)
        assert row["error"].startswith("HTTP 401") and "request refused: " in row["error"]
        con = duckdb.connect(str(db), read_only=True)
        log = repr(con.execute("SELECT * FROM runs").fetchall()) + repr(con.execute("SELECT * FROM predictions")
                                                                        .fetchall())
        command = con.execute("SELECT command FROM runs").fetchall()[0][0]
        con.close()
        assert "--base-url" in command
        stored += out.read_text() + log + result.stdout + result.stderr
    assert "http://***@127.0.0.1:" in stored
    for secret in ("hunter2pw", basic, "sk-topsecret-999"):
        assert secret not in stored, stored[max(0, stored.find(secret) - 300):stored.find(secret) + 50]
