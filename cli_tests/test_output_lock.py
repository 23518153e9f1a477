"""One run writes an output at a time: a second run on the same --out (or --db) gets a one-line error naming the first,
before it reads, trims or writes anything."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeServer
from predict_support import ICDREASON

from icdreason.cli import app
from icdreason.errors import LockedError
from icdreason.records import PredictionDB, Record, open_writer, read_predictions


def _notes(path: Path, count: int, hold_at: int | None = None) -> list[str]:
    ids = [f"n{i:03d}" for i in range(count)]
    with open(path, "w") as fh:
        for i, note_id in enumerate(ids):
            text = "low back pain radiating to the leg" + (" @hold" if i == hold_at else "")
            fh.write(json.dumps({"id": note_id, "text": text}) + "\n")
    return ids


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(ICDREASON), "predict", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_second_run_on_the_same_output_is_refused_naming_the_first(retriever_kb, tmp_path, suffix):
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    ids = _notes(tmp_path / "notes.jsonl", 12, hold_at=6)
    out = tmp_path / f"pred.{suffix}"
    watched = out if suffix == "jsonl" else tmp_path / f".pred.{suffix}.journal.jsonl"
    hold = threading.Event()
    with FakeServer(hold=hold) as server:
        args = [str(tmp_path / "notes.jsonl"), "--engine", "openai", "--model", "m", "--base-url", server.url,
                "--out", str(out), "--batch-size", "3", "--resume", "-q"]
        first = _start(args, env)
        try:
            deadline = time.monotonic() + 60
            while _lines(watched) < 6 and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)  # two batches written; the third waits on the server
            before = watched.read_bytes()
            second = subprocess.run([str(ICDREASON), "predict", *args], env=env, capture_output=True, text=True,
                                    timeout=60)
            assert watched.read_bytes() == before  # the second run touched nothing
        finally:
            hold.set()
        _, first_err = first.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    said = second.stderr.strip().splitlines()
    message = said[-1]
    assert [line for line in said if not line.startswith(("engine:", "server:"))] == [message]  # one line
    assert message.startswith(f"error: {out} is being written by another run (pid {first.pid} on ")
    assert "icdreason predict" in message and "--resume" in message and "wait for it" in message
    rows = read_predictions(out)
    assert [r["id"] for r in rows] == ids  # each note once, in order
    assert not (tmp_path / f".pred.{suffix}.lock").exists()  # released on exit


def test_a_locked_db_is_found_before_the_output_is_trimmed(retriever_kb, tmp_path):
    """With a shared --db, the output (here with a torn last line) is left as it is when the log is busy."""
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    _notes(tmp_path / "notes.jsonl", 3)
    out, db = tmp_path / "pred.jsonl", tmp_path / "log.duckdb"
    out.write_text(json.dumps({"id": "n000", "run_id": "r1"}) + '\n{"id": "n001", "ru')
    before = out.read_bytes()
    holder = PredictionDB(db)  # another run holds the log
    try:
        done = subprocess.run([str(ICDREASON), "predict", str(tmp_path / "notes.jsonl"), "--out", str(out), "--db",
                               str(db), "--resume", "-q"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert done.returncode == 1, done.stderr
    assert f"{db} is being written by another run (pid {os.getpid()} on " in done.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize("name", ["a.jsonl", "a.csv", "a.parquet"])
def test_writers_hold_an_exclusive_lock_until_closed(tmp_path, name):
    out = tmp_path / name
    record = Record(id="x", source="s", run_id="r", engine="e", model=None, uses_llm=False)
    first = open_writer(out)
    first.write_batch([record])
    with pytest.raises(LockedError, match=rf"{name} is being written by another run \(pid {os.getpid()} on "):
        open_writer(out, resume=True)
    with pytest.raises(LockedError):  # before the "exists" check: the answer is the lock, not --resume
        open_writer(out)
    first.close()
    assert not (tmp_path / f".{name}.lock").exists()
    with open_writer(out, resume=True) as again:
        assert again.done_ids == {"x"}


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over(runner, use_kb, tmp_path):
    notes = tmp_path / "notes.jsonl"
    _notes(notes, 2)
    out = tmp_path / "pred.jsonl"
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / ".pred.jsonl.lock"
    stale.write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename, "started": "2026-01-01T00:00:00",
                                 "command": "icdreason predict old"}))
    result = runner.invoke(app, ["predict", str(notes), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    assert len(read_predictions(out)) == 2 and not stale.exists()


def test_a_child_left_running_by_a_dead_run_does_not_keep_its_lock(tmp_path):
    """An engine's forked worker inherits the run's lock file; when the run dies the worker must not hold it."""
    import signal
    import sys

    from icdreason.locks import FileLock

    out = tmp_path / "pred.jsonl"
    script = (
        "import os, sys, time\n"
        "from icdreason.locks import FileLock\n"
        f"lock = FileLock.acquire({str(out)!r})\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    os.close(1)\n"  # let the test read the parent's output without waiting for the child
        "    os.close(2)\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "print(child, flush=True)\n"
        "os._exit(0)\n"  # the run dies at once, without releasing anything; its worker lives on
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    child = int(done.stdout.strip())
    try:
        os.kill(child, 0)  # the worker is still running
        with FileLock.acquire(out) as lock:
            assert lock.held
    finally:
        os.kill(child, signal.SIGKILL)
