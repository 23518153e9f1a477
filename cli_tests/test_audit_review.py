"""The review session in-process: ReviewSession (logic) and ReviewScreen (terminal) driven through the Python API."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import duckdb
import pytest
from audit_fixtures import record, write_predictions
from rich.console import Console

from icdreason.audit import (
    ActionRefused, AuditDatabaseError, AuditStore, ReviewSession, start_audit,
)
from icdreason.audit.keys import PipeKeys
from icdreason.audit.terminal import ReviewScreen, TerminalTooNarrow, check_width


@pytest.fixture(scope="module")
def kb(built_kb):
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(built_kb) as base:
        yield base


@pytest.fixture
def store(tmp_path, kb) -> AuditStore:
    preds = write_predictions(tmp_path / "pred.jsonl")
    s = AuditStore.open(tmp_path / "audit.duckdb")
    start_audit(s, preds, kb)
    return s


def clock():
    ticks = itertools.count(0, 7.5)  # every call is 7.5 s after the previous one
    return lambda: float(next(ticks))


def screen(session: ReviewSession, keys: str, *, height: int = 300) -> tuple[ReviewScreen, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=100, height=height, color_system=None, legacy_windows=False)
    return ReviewScreen(session, console, PipeKeys(console, io.StringIO(keys))), out


def latest(store: AuditStore) -> list[tuple]:
    return [(d.reviewer, d.case_id, d.decision, d.expert_code) for d in store.decisions()]


def test_fresh_database_columns_are_pinned(tmp_path):
    store = AuditStore.open(tmp_path / "fresh.duckdb")
    con = duckdb.connect(str(store.path), read_only=True)
    columns = {t: [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [t]
    ).fetchall()] for t in ("_migrations", "audit", "cases", "reviewers", "decisions", "blind_codes")}
    migrations = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]
    con.close()
    assert migrations == ["0001_audit_tables", "0002_decision_index"]
    assert columns == {
        "_migrations": ["name", "applied_at"],
        "audit": ["predictions_path", "predictions_sha256", "run_id", "records", "strategy", "sample_size", "seed",
                  "kb_release", "icdreason_version", "created_at"],
        "cases": ["position", "case_id", "model_code", "status", "description", "chapter", "category", "confidence",
                  "record"],
        "reviewers": ["name", "added_at", "added_by"],
        "decisions": ["id", "reviewer", "case_id", "predictions_sha256", "decision", "expert_code", "blind_code",
                      "reason", "comment", "flagged", "seconds", "decided_at", "source"],
        "blind_codes": ["reviewer", "case_id", "code", "seconds", "entered_at"],
    }


def test_session_rules_and_time_spent(store, kb):
    s = ReviewSession(store, "alice", kb, clock=clock())
    assert s.current.case_id == "n1"
    with pytest.raises(ActionRefused, match="model's code"):
        s.correct("I21.4")
    with pytest.raises(ActionRefused, match="header, not billable"):
        s.correct("I21")
    with pytest.raises(ActionRefused, match="needs a comment"):
        s.reject("other", "")
    s.accept()                        # refused tries record nothing
    s.skip()                          # n2 comes back after the others
    s.reject("missed_severity", "unstable angina, not angina", "J15.9")
    assert s.current.case_id == "n4"
    s.accept()
    s.accept()
    assert s.current.case_id == "n2"  # the skipped case, last
    s.correct("E11.65")
    assert s.done and s.remaining == 0
    decisions = store.decisions("alice")
    assert [(d.case_id, d.decision) for d in decisions] == [
        ("n1", "accept"), ("n3", "reject"), ("n4", "accept"), ("n5", "accept"), ("n2", "correct")]
    assert all(d.seconds == 7.5 for d in decisions)  # one clock tick between showing a case and deciding it
    assert decisions[1].reason == "missed_severity" and decisions[1].expert_code == "J15.9"


def test_accept_refused_when_the_model_code_is_not_billable(tmp_path, kb):
    preds = write_predictions(tmp_path / "h.jsonl", [
        record("h1", "E11", "header", 4, "E11", 0.5, "Diabetes.", "Diabetes."),
        record("h2", None, "no_output", None, None, 0.0, "Chest pain.", ""),
    ])
    store = AuditStore.open(tmp_path / "h.duckdb")
    start_audit(store, preds, kb)
    s = ReviewSession(store, "alice", kb)
    with pytest.raises(ActionRefused, match="E11 is header"):
        s.accept()
    s.correct("E11.9")
    with pytest.raises(ActionRefused, match="no code"):
        s.accept()


def test_two_reviewers_progress_and_back(store, kb):
    alice = ReviewSession(store, "alice", kb)
    alice.accept()
    alice.accept()
    bob = ReviewSession(store, "bob", kb)
    assert bob.current.case_id == "n1" and bob.decided == 0
    run, out = screen(bob, "a\nb\nc\nI21.9\nq\n")
    run.run()
    text = out.getvalue()
    assert "Case 1/5  id n1  ·  bob: 0 decided" in text
    assert "revisiting: you decided accept; a new decision replaces it" in text
    assert latest(store) == [("alice", "n1", "accept", None), ("alice", "n2", "accept", None),
                             ("bob", "n1", "correct", "I21.9")]
    again = ReviewSession(store, "alice", kb)
    assert again.current.case_id == "n3" and again.decided == 2


def test_blind_mode_hides_the_model_until_the_code_is_entered(store, kb):
    s = ReviewSession(store, "carol", kb, blind=True)
    run, out = screen(s, "a\ne\nE11\nI21.4\na\ne\nE11.65\nc\nE11.65\nq\n")
    run.run()
    text = out.getvalue()
    first = text.split("your code (Enter cancels)> E11")[0]
    assert "BLIND MODE" in first and "I21.4" not in first and "Reasoning trace" not in first
    assert "blind mode: enter your code first (e)" in first  # 'a' before entering a code is refused
    assert "E11 (Type 2 diabetes mellitus) is a header, not billable" in text
    assert "your blind code  I21.4  = model" in text
    assert [(d.case_id, d.decision, d.expert_code, d.blind_code) for d in store.decisions("carol")] == [
        ("n1", "accept", None, "I21.4"), ("n2", "correct", "E11.65", "E11.65")]
    assert store.blind_codes("carol")["n2"][0] == "E11.65"


def test_long_notes_page(tmp_path, kb):
    long_note = "\n".join(f"Line {i}: vitals stable, no acute distress." for i in range(80))
    preds = write_predictions(tmp_path / "long.jsonl", [
        record("long", "R69", "billable", 18, "R69", 0.5, long_note, "Vitals stable, no acute distress.")])
    store = AuditStore.open(tmp_path / "long.duckdb")
    start_audit(store, preds, kb)
    run, out = screen(ReviewSession(store, "alice", kb), "n\nn\nn\nn\np\na\n", height=40)
    run.run()
    text = out.getvalue()
    assert "page 1/3" in text and "page 3/3" in text
    first_page = text.split("page 1/3")[0]
    assert "Line 0:" in first_page and "Line 79" not in first_page
    assert "Line 79" in text
    assert latest(store) == [("alice", "long", "accept", None)]


def test_other_predictions_file_is_detected_by_hash(store, kb, tmp_path):
    other = write_predictions(tmp_path / "other.jsonl", [record("n1", "I21.9", "billable", 9, "I21", 0.5, "x", "y")])
    with pytest.raises(AuditDatabaseError, match="is not the predictions file this audit started on"):
        start_audit(store, other, kb)
    info, created = start_audit(store, tmp_path / "pred.jsonl", kb)  # the original: fine
    assert not created and info.records == 5


def test_read_only_database_keeps_the_decision(store, kb, monkeypatch):
    s = ReviewSession(store, "alice", kb)
    monkeypatch.setattr("icdreason.audit.store._writable", lambda path: False)
    warning = s.accept()
    assert "is read-only" in warning and "decision kept in" in warning
    assert Path(s.pending.path).read_text().splitlines()[1].startswith("n1,alice,accept")
    monkeypatch.setattr("icdreason.audit.store._writable", lambda path: True)
    assert s.accept() is None  # the kept decision goes in with this one
    assert latest(store) == [("alice", "n1", "accept", None), ("alice", "n2", "accept", None)]
    assert not Path(s.pending.path).exists()


def test_read_only_database_at_start_is_a_clear_message(store, runner, monkeypatch, built_kb, tmp_path):
    from icdreason.cli import app

    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    monkeypatch.setattr("icdreason.audit.store._writable", lambda path: False)
    result = runner.invoke(app, ["audit", "start", str(tmp_path / "pred.jsonl"), "--reviewer", "alice",
                                 "--db", str(store.path)], input="a\n")
    assert result.exit_code == 1
    assert "is read-only: make it writable" in result.stderr
    assert store.decisions() == []


def test_narrow_console_is_refused():
    with pytest.raises(TerminalTooNarrow, match="needs at least 60"):
        check_width(Console(file=io.StringIO(), width=59))


def test_sampled_audit_via_cli(runner, built_kb, tmp_path, monkeypatch):
    from icdreason.cli import app

    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    preds = write_predictions(tmp_path / "pred.jsonl")
    db = tmp_path / "s.duckdb"
    result = runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db),
                                 "--sample", "2", "--strategy", "low-confidence"], input="q\n")
    assert result.exit_code == 0, result.stderr
    assert "2 of 5 cases (low-confidence, seed 0)" in result.stderr
    assert [c.case_id for c in AuditStore.open(db).cases()] == ["n5", "n2"]  # confidence 0.3, then 0.4


def test_a_batch_keeps_its_order_so_the_last_decision_wins(store):
    from icdreason.audit import Decision

    batch = [Decision("alice", "n1", "accept", predictions_sha256="x"),
             Decision("alice", "n1", "correct", expert_code="I21.9", predictions_sha256="x"),
             Decision("alice", "n2", "skip", predictions_sha256="x")] * 50
    store.record(batch)
    assert [(d.case_id, d.decision) for d in store.decisions("alice")] == [("n1", "correct"), ("n2", "skip")]
    history = store.decisions("alice", latest=False)
    assert [d.decision for d in history[:3]] == ["accept", "correct", "skip"] and len(history) == 150
