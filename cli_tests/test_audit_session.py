"""`icdreason audit start`: the interactive session driven by scripted keys through stdin of a real process.

From a pipe the session reads one key or answer per line; the rows it commits are checked in DuckDB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from audit_fixtures import rows, write_predictions

ICDREASON = str(Path(sys.executable).with_name("icdreason"))


@pytest.fixture
def audit_env(built_kb, tmp_path) -> dict[str, str]:
    return dict(os.environ, ICDREASON_KB=str(built_kb), COLUMNS="100", LINES="300",
                ICDREASON_AUDIT_LOCK_TIMEOUT="0.3")


@pytest.fixture
def preds(tmp_path) -> Path:
    return write_predictions(tmp_path / "pred.jsonl")


def audit(args: list[str], keys: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ICDREASON, "audit", *args], input=keys, capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def create_audit(db: Path, preds: Path, kb_path: Path, decided: tuple[str, ...] = ()) -> None:
    """Start the audit through the Python API (faster than a session), optionally with alice's accepts."""
    from icdreason.audit import AuditStore, Decision, start_audit
    from icdreason.kb import KnowledgeBase

    store = AuditStore.open(db)
    with KnowledgeBase.open(kb_path) as kb:
        info, _ = start_audit(store, preds, kb)
    store.add_reviewer("alice")
    store.record([Decision("alice", case_id, "accept", predictions_sha256=info.predictions_sha256)
                  for case_id in decided])


def test_scripted_session_commits_each_decision(audit_env, preds, tmp_path):
    keys = "\n".join([
        "a",                      # n1 I21.4: accept
        "c", "E11", "E11.65",     # n2: correct; E11 is a header -> asked again; E11.65 is billable
        "r", "6", "jumps to pneumonia in the first line", "J15.9",  # n3: reject, premature closure, right code
        "f", "s",                 # n4: flag, skip
        "x",                      # n5: unknown key -> message, nothing recorded
        "q",
    ]) + "\n"
    result = audit(["start", str(preds), "--reviewer", "alice"], keys, audit_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Case 1/5" in result.stdout and "Case 5/5" in result.stdout
    assert "E11 (Type 2 diabetes mellitus) is a header, not billable" in result.stdout
    assert "unknown key 'x'" in result.stdout
    assert rows(tmp_path / "audit.duckdb") == [
        ("alice", "n1", "accept", None, None, None, False),
        ("alice", "n2", "correct", "E11.65", None, None, False),
        ("alice", "n3", "reject", "J15.9", "premature_closure", "jumps to pneumonia in the first line", False),
        ("alice", "n4", "skip", None, None, None, True),
    ]
    (sha,) = rows(tmp_path / "audit.duckdb", "SELECT DISTINCT predictions_sha256 FROM decisions")
    assert sha == rows(tmp_path / "audit.duckdb", "SELECT predictions_sha256 FROM audit")[0]
    assert "3 decided in all, 2 to go" in result.stderr


def test_kill_mid_session_then_resume(audit_env, preds, tmp_path):
    db = tmp_path / "audit.duckdb"
    out = open(tmp_path / "out.txt", "w")
    proc = subprocess.Popen([ICDREASON, "audit", "start", str(preds), "--reviewer", "alice"], stdin=subprocess.PIPE,
                            stdout=out, stderr=subprocess.STDOUT, text=True, env=audit_env, cwd=tmp_path)
    try:
        proc.stdin.write("a\nc\nE11.65\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not (db.exists() and len(rows(db)) == 2):
            assert time.monotonic() < deadline, (tmp_path / "out.txt").read_text()
            time.sleep(0.2)
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait()
    assert proc.returncode == -9
    result = audit(["start", str(preds), "--reviewer", "alice"], "a\nq\n", audit_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("Case 3/5")
    assert [r[1:4] for r in rows(db)] == [("n1", "accept", None), ("n2", "correct", "E11.65"), ("n3", "accept", None)]


def test_locked_database_keeps_decisions_and_writes_them_later(audit_env, preds, tmp_path, built_kb):
    db = tmp_path / "audit.duckdb"
    create_audit(db, preds, built_kb, decided=("n1",))
    out = open(tmp_path / "out.txt", "w")
    proc = subprocess.Popen([ICDREASON, "audit", "start", str(preds), "--reviewer", "alice"], stdin=subprocess.PIPE,
                            stdout=out, stderr=subprocess.STDOUT, text=True, env=audit_env, cwd=tmp_path)
    pending = Path(f"{db}.alice.pending.csv")
    deadline = time.monotonic() + 60
    while "Case 2/5" not in (tmp_path / "out.txt").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    holder = duckdb.connect(str(db))  # another process (this test) holds the write lock
    try:
        proc.stdin.write("a\n")
        proc.stdin.flush()
        while not pending.exists():
            assert time.monotonic() < deadline, (tmp_path / "out.txt").read_text()
            time.sleep(0.1)
    finally:
        holder.close()
    proc.stdin.write("a\nq\n")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    text = (tmp_path / "out.txt").read_text()
    assert "is locked by another process" in text and "decision kept in" in text
    assert not pending.exists()
    assert [r[1:3] for r in rows(db)] == [("n1", "accept"), ("n2", "accept"), ("n3", "accept")]


def test_quit_while_locked_leaves_a_pending_file_that_the_next_start_writes(audit_env, preds, tmp_path, built_kb):
    db = tmp_path / "audit.duckdb"
    create_audit(db, preds, built_kb)
    proc = subprocess.Popen([ICDREASON, "audit", "start", str(preds), "--reviewer", "alice"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=audit_env, cwd=tmp_path)
    time.sleep(0.1)
    # wait until the session shows the first case, then lock the file and decide
    line = proc.stdout.readline()
    while "Case 1/5" not in line:
        line = proc.stdout.readline()
    holder = duckdb.connect(str(db))
    try:
        out, err = proc.communicate("r\n2\nneeds laterality\n\nq\n", timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert "could not be written" in err
    pending = Path(f"{db}.alice.pending.csv")
    assert "n1,alice,reject" in pending.read_text()
    again = audit(["start", str(preds), "--reviewer", "alice"], "q\n", audit_env, tmp_path)
    assert "Wrote 1 decision(s) kept in" in again.stderr
    assert not pending.exists()
    assert rows(db)[0][:6] == ("alice", "n1", "reject", None, "not_specific_enough", "needs laterality")


def test_terminal_too_narrow_is_a_clear_message(audit_env, preds, tmp_path):
    result = audit(["start", str(preds), "--reviewer", "alice"], "a\n", {**audit_env, "COLUMNS": "40"}, tmp_path)
    assert result.returncode == 2
    assert "the terminal is 40 columns wide; the audit needs at least 60" in result.stderr
    assert not (tmp_path / "audit.duckdb").exists()


def test_single_keys_on_a_terminal(audit_env, preds, tmp_path, built_kb):
    """On a TTY (here a pseudo-terminal) decisions are single key presses and codes are validated while typed."""
    import pty
    import threading

    db = tmp_path / "audit.duckdb"
    create_audit(db, preds, built_kb)
    master, slave = pty.openpty()
    proc = subprocess.Popen([ICDREASON, "audit", "start", str(preds), "--reviewer", "alice"], stdin=slave,
                            stdout=slave, stderr=slave, env=audit_env, cwd=tmp_path, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []

    def pump():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while text.encode() not in b"".join(chunks):
            assert time.monotonic() < deadline, b"".join(chunks).decode(errors="replace")[-2000:]
            time.sleep(0.05)

    wait_for("Case 1/5")
    os.write(master, b"a")  # one key, no Enter
    wait_for("Case 2/5")
    os.write(master, b"c")
    wait_for("correct code")
    for ch in b"E11.6":
        os.write(master, bytes([ch]))
        time.sleep(0.02)
    wait_for("header, not billable")  # E11.6 is a header: said while typing
    os.write(master, b"5\r")
    wait_for("Case 3/5")
    os.write(master, b"q")
    assert proc.wait(timeout=60) == 0
    reader.join(timeout=5)
    os.close(master)
    assert [r[1:4] for r in rows(db)] == [("n1", "accept", None), ("n2", "correct", "E11.65")]
