"""Crash safety: torn JSONL tails, CSV/Parquet journals, and --resume after a real process was SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from predict_support import EXAMPLES, ICDREASON, default_signals, kill_when

from icdreason.records import Record, open_writer, read_predictions


def _rec(i: int, run: str = "r1") -> Record:
    return Record(id=f"n{i}", source=f"n{i}.txt", run_id=run, engine="retriever", model=None, uses_llm=False,
                  code="I10", status="billable", trace=f"trace {i}\nwith a second line, \"quoted\"")


def test_jsonl_resume_cuts_a_torn_last_line(tmp_path):
    out = tmp_path / "p.jsonl"
    with open_writer(out) as w:
        w.write_batch([_rec(0), _rec(1)])
    with open(out, "a") as fh:
        fh.write('{"id": "n2", "source": "n2.t')  # what a kill in the middle of a write leaves
    assert [r["id"] for r in read_predictions(out)] == ["n0", "n1"]  # readers skip the torn line too
    w = open_writer(out, resume=True)
    assert w.done_ids == {"n0", "n1"} and w.existing_run_id == "r1"
    w.write_batch([_rec(2)])
    w.close()
    assert [r["id"] for r in read_predictions(out)] == ["n0", "n1", "n2"]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_table_outputs_keep_a_journal_until_complete(tmp_path, suffix):
    out = tmp_path / f"p.{suffix}"
    w = open_writer(out)
    w.write_batch([_rec(0), _rec(1)])
    w.close(complete=False)  # an interrupted run: the file holds what was written, the journal stays
    journal = tmp_path / f".p.{suffix}.journal.jsonl"
    assert journal.exists() and [r["id"] for r in read_predictions(out)] == ["n0", "n1"]
    w = open_writer(out, resume=True)
    assert w.done_ids == {"n0", "n1"}
    w.write_batch([_rec(2)])
    w.close()
    assert not journal.exists()
    rows = read_predictions(out)
    assert [r["id"] for r in rows] == ["n0", "n1", "n2"] and rows[2]["trace"] == _rec(2).trace
    # a finished file can be extended with --resume as well
    w = open_writer(out, resume=True)
    assert w.done_ids == {"n0", "n1", "n2"}
    w.write_batch([_rec(3)])
    w.close()
    assert [r["id"] for r in read_predictions(out)] == ["n0", "n1", "n2", "n3"]


def _big_table(path: Path, count: int) -> list[str]:
    texts = [p.read_text() for p in sorted(EXAMPLES.glob("*.txt"))]
    ids = [f"note{i:05d}" for i in range(count)]
    with open(path, "w") as fh:
        for i, note_id in enumerate(ids):
            fh.write(json.dumps({"id": note_id, "text": texts[i % len(texts)] + f"\nVisit {i}."}) + "\n")
    return ids


def _kill_after_first_flush(args: list[str], watch, env) -> int:
    """Start `icdreason predict`, SIGKILL it once ``watch()`` reports written records; return that count."""
    return kill_when([str(ICDREASON), "predict", *args], watch, env)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_resume_after_sigkill_loses_and_duplicates_nothing(retriever_kb, tmp_path):
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    ids = _big_table(tmp_path / "notes.jsonl", 1000)
    out = tmp_path / "pred.jsonl"
    args = [str(tmp_path / "notes.jsonl"), "--out", str(out), "--batch-size", "50", "-q"]
    _kill_after_first_flush(args, lambda: _lines(out), env)
    before = read_predictions(out)
    assert 0 < len(before) < len(ids)
    done = subprocess.run([str(ICDREASON), "predict", *args, "--resume"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    after = read_predictions(out)
    assert [r["id"] for r in after] == ids  # in order, each once
    assert after[: len(before)] == before  # what was written before the kill is kept as it was
    assert {r["run_id"] for r in after} == {before[0]["run_id"]}


def test_resume_parquet_and_db_after_sigkill(retriever_kb, tmp_path):
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    ids = _big_table(tmp_path / "notes.jsonl", 600)
    out, db = tmp_path / "pred.parquet", tmp_path / "log.duckdb"
    journal = tmp_path / ".pred.parquet.journal.jsonl"
    args = [str(tmp_path / "notes.jsonl"), "--out", str(out), "--db", str(db), "--batch-size", "50", "-q"]
    _kill_after_first_flush(args, lambda: _lines(journal), env)
    assert journal.exists()
    done = subprocess.run([str(ICDREASON), "predict", *args, "--resume"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert not journal.exists()
    rows = read_predictions(out)
    assert sorted(r["id"] for r in rows) == ids
    con = duckdb.connect(str(db), read_only=True)
    total, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM predictions").fetchall()[0]
    runs = con.execute("SELECT status, sessions, notes FROM runs").fetchall()
    con.close()
    assert total == distinct == len(ids)
    assert runs == [("finished", 2, len(ids))]  # notes: what the log holds, the killed session's batches included


def test_ctrl_c_keeps_a_readable_file_and_says_how_to_resume(retriever_kb, tmp_path):
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    ids = _big_table(tmp_path / "notes.jsonl", 600)
    out = tmp_path / "pred.csv"
    journal = tmp_path / ".pred.csv.journal.jsonl"
    args = [str(tmp_path / "notes.jsonl"), "--out", str(out), "--batch-size", "50", "-q"]
    proc = subprocess.Popen([str(ICDREASON), "predict", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and _lines(journal) == 0:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    partial = read_predictions(out)  # the CSV itself is complete and readable up to the last batch
    assert 0 < len(partial) < len(ids) and journal.exists()
    done = subprocess.run([str(ICDREASON), "predict", *args, "--resume"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in read_predictions(out)] == ids and not journal.exists()


def test_sigterm_marks_the_run_interrupted_and_keeps_what_was_written(retriever_kb, tmp_path):
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    ids = _big_table(tmp_path / "notes.jsonl", 600)
    out, db = tmp_path / "pred.jsonl", tmp_path / "log.duckdb"
    args = [str(tmp_path / "notes.jsonl"), "--out", str(out), "--db", str(db), "--batch-size", "50", "-q"]
    proc = subprocess.Popen([str(ICDREASON), "predict", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and _lines(out) == 0:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports a job ended by it
    assert "terminated (SIGTERM)" in err and "--resume" in err and "Traceback" not in err
    written = read_predictions(out)
    assert 0 < len(written) < len(ids) and len(written) % 50 == 0  # whole batches only
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT status, notes FROM runs").fetchall() == [("interrupted", len(written))]
    con.close()
    done = subprocess.run([str(ICDREASON), "predict", *args, "--resume"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in read_predictions(out)] == ids
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT status, notes, sessions FROM runs").fetchall() == [("finished", len(ids), 2)]
    con.close()
