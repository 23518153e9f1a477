"""Failures from below the library end in one line and the right exit code, never a traceback: unreadable inputs,
odd but valid inputs (huge numeric ids, lone surrogates, a byte-order mark), Ctrl-C during a DuckDB query, a full
disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import threading
import time

import duckdb
import pytest

from icdreason.cli import app


def _one_line(result) -> str:
    """The one ``error:`` line of a failed command (progress lines such as predict's engine line may precede it)."""
    assert "Traceback" not in result.output + result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), result.stderr
    return errors[0]


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text("id,code\nn1,I21.4\nn2,J18.9\n")
    return path


@pytest.mark.parametrize("name, content, message", [
    ("latin.csv", b"id,code\nn1,I21.4\nn2,caf\xe9\n", "is not UTF-8 text"),
    ("latin.jsonl", b'{"id": "n1", "code": "I21.4", "x": "caf\xe9"}\n', "is not UTF-8 text"),
    ("broken.json", b'[{"id": "n1", "code": "I21.4"},\n{"id": ', "is not valid JSON"),
    ("torn.jsonl", b'{"id": "n1", "code": "I21.4"}\n{"id": "n2", "co\n{"id": "n3"}\n', "is not a JSON object"),
])
def test_eval_refuses_unreadable_predictions_in_one_line(runner, gold, tmp_path, name, content, message):
    preds = tmp_path / name
    preds.write_bytes(content)
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold)])
    assert result.exit_code == 2
    assert message in _one_line(result)


def test_eval_reads_huge_numeric_ids_lone_surrogates_and_a_bom(runner, tmp_path):
    digits = "9" * 5000
    preds = tmp_path / "preds.jsonl"  # written by another tool: a BOM, a 5,000-digit id, an id with a lone surrogate
    preds.write_bytes(b"\xef\xbb\xbf" + (
        f'{{"id": {digits}, "code": "I21.4"}}\n'
        '{"id": "n\\ud83d", "code": "J18.9"}\n'
        '{"id": "n3", "code": "N39.0", "note": "lone \\udc80 in the note"}\n').encode())
    gold = tmp_path / "gold.jsonl"
    gold.write_text(f'{{"id": {digits}, "code": "I21.4"}}\n{{"id": "n\\ud83d", "code": "J18.9"}}\n'
                    '{"id": "n3", "code": "N39.0"}\n')
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--out", "-"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    run = report["runs"][0]
    assert (run["matched"], run["missing_predictions"], run["unmatched_predictions"]) == (3, 0, 0)
    assert run["levels"]["code"]["accuracy"] == 1.0


def test_notes_with_huge_numeric_ids_keep_them(tmp_path):
    from icdreason.notes import read_notes

    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": ' + "1" * 5000 + ', "text": "chest pain"}\n{"id": "n\\ud83d", "text": "a \\udc80 b"}\n')
    first, second = read_notes([str(notes)])
    assert first.id == "1" * 5000 and first.text == "chest pain" and not first.problem
    assert second.id == "n\ufffd" and second.text == "a \ufffd b" and "decoded_with_replacement" in second.flags


def test_duckdb_reports_ctrl_c_as_a_keyboard_interrupt(tmp_path):
    from icdreason.db import interruptible

    con = duckdb.connect(str(tmp_path / "big.duckdb"))
    con.execute("CREATE TABLE t (x BIGINT)")
    # Python's own Ctrl-C handler, even where the test runs under a shell that ignores SIGINT (CI's background shell):
    # a process started with SIGINT ignored never installs it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt), interruptible():
            con.execute("INSERT INTO t SELECT range FROM range(5000000000)")  # minutes: the signal comes first
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        con.close()


class _InterruptedInsert:
    """A prediction-log connection whose next insert is interrupted the way DuckDB reports Ctrl-C."""

    def __init__(self, con):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args):
        if sql.lstrip().startswith("INSERT INTO predictions"):
            raise RuntimeError("Query interrupted")
        return self._con.execute(sql, *args)


def test_ctrl_c_during_a_prediction_log_insert_is_an_interrupted_run(runner, use_kb, tmp_path, monkeypatch):
    from icdreason.records import PredictionDB

    original = PredictionDB.__init__

    def init(self, path):
        original(self, path)
        self.con = _InterruptedInsert(self.con)

    monkeypatch.setattr(PredictionDB, "__init__", init)
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "n1", "text": "Crushing chest pain, troponin elevated: NSTEMI."}\n')
    log = tmp_path / "preds.duckdb"
    result = runner.invoke(app, ["predict", str(notes), "--out", str(tmp_path / "p.jsonl"), "--db", str(log), "-q"])
    assert result.exit_code == 130
    assert "Traceback" not in result.output + result.stderr
    assert "interrupted: the batches written so far are kept; continue with the same command and --resume" in \
        result.stderr
    con = duckdb.connect(str(log), read_only=True)
    assert con.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    con.close()


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a "full disk": flushing any file in it to disk fails with ENOSPC, as on a full file system."""
    disk = tmp_path / "disk"
    disk.mkdir()
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(disk)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return disk


def test_a_full_disk_is_one_line_naming_the_file(runner, use_kb, full_disk, tmp_path):
    from audit_fixtures import write_predictions

    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "n1", "text": "Crushing chest pain, troponin elevated: NSTEMI."}\n')
    out = full_disk / "preds.jsonl"
    predicted = runner.invoke(app, ["predict", str(notes), "--out", str(out), "-q"])
    assert predicted.exit_code == 1
    assert f"{out}: No space left on device: free some space or write to another disk" in _one_line(predicted)

    preds = write_predictions(tmp_path / "pred.jsonl")
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\nn1,I21.4\n")
    metrics = full_disk / "metrics.json"
    evaluated = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--out", str(metrics)])
    assert evaluated.exit_code == 1 and f"{metrics}: No space left on device" in _one_line(evaluated)
    assert list(full_disk.iterdir()) == [out]  # no temporary file left behind

    db = tmp_path / "audit.duckdb"
    assert runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db)],
                         input="q\n").exit_code == 0
    md = full_disk / "report.md"
    reported = runner.invoke(app, ["audit", "report", "--db", str(db), "--md", str(md)])
    assert reported.exit_code == 1 and f"{md}: No space left on device" in reported.stderr
    assert "Traceback" not in reported.output + reported.stderr


def test_an_output_that_is_a_pipe_is_written_in_place(runner, tmp_path):
    from audit_fixtures import write_predictions

    preds = write_predictions(tmp_path / "pred.jsonl")
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\nn1,I21.4\n")
    pipe = tmp_path / "metrics.pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--out", str(pipe), "--brief"])
    if stat.S_ISFIFO(os.stat(pipe).st_mode) and not received:
        reader.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)  # still the pipe: not replaced by a renamed temporary file
    assert json.loads(received[0])["gold"]["ids"] == 1


def _can_mount_tmpfs(where) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_really_full_tmpfs_is_one_line(runner, use_kb, tmp_path):
    disk = tmp_path / "small"
    disk.mkdir()
    if not _can_mount_tmpfs(disk):
        pytest.skip("mounting a small tmpfs needs root (the monkeypatched full disk above covers the same path)")
    try:
        notes = tmp_path / "notes.jsonl"
        text = "Crushing chest pain, troponin elevated: NSTEMI. " * 400
        notes.write_text("".join(json.dumps({"id": f"n{i}", "text": text}) + "\n" for i in range(20)))
        out = disk / "preds.jsonl"
        result = runner.invoke(app, ["predict", str(notes), "--out", str(out), "-q", "--batch-size", "2"])
        assert result.exit_code == 1
        assert f"{out}: No space left on device" in _one_line(result)
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(disk)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def test_eval_reads_a_csv_with_a_cell_of_megabytes(runner, gold, tmp_path):
    preds = tmp_path / "preds.csv"  # Arrow's CSV reader splits a file into 1 MB blocks; a row may be longer
    preds.write_text("id,code,note\nn1,I21.4," + "chest pain " * 300_000 + "\nn2,J18.9,cough\n", encoding="utf-8")
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--out", "-"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["runs"][0]["matched"] == 2
