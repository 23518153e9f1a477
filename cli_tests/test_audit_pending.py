"""Decisions kept in a pending file while the audit database was locked are never lost, and decision CSVs (the
pending file, a spreadsheet given to `audit import`) are read with standard CSV quoting or refused row by row."""

from __future__ import annotations

import csv

import pytest
from audit_fixtures import NOTES, record, write_predictions

from icdreason.audit import AuditStore, Decision
from icdreason.audit.pending import PendingFile, pending_path
from icdreason.cli import app

QUOTED_ID, COMMA_ID = 'n"1', "n,2"
SAID_NO = 'Patient said "no", see chart'


@pytest.fixture
def audit_db(tmp_path, built_kb, monkeypatch, runner):
    """An audit of five cases whose first two ids hold a double quote and a comma; alice has started it."""
    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    records = [record(*n) for n in NOTES]
    records[0]["id"], records[1]["id"] = QUOTED_ID, COMMA_ID
    preds = write_predictions(tmp_path / "pred.jsonl", records)
    db = tmp_path / "audit.duckdb"
    started = runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db)], input="q\n")
    assert started.exit_code == 0, started.stderr
    return db


def _keep(db, decisions: list[Decision], path=None):
    """Leave decisions in alice's pending file, as a session does while the database is locked."""
    store = AuditStore.open(db)
    sha = store.info().predictions_sha256
    for d in decisions:
        d.predictions_sha256 = sha
    pending = PendingFile(path or pending_path(store, "alice"))
    pending.save(decisions)
    return pending.path


def _start(runner, db):
    preds = db.parent / "pred.jsonl"
    return runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db)], input="q\n")


def _stored(db) -> dict[str, tuple]:
    return {d.case_id: (d.decision, d.expert_code, d.reason, d.comment) for d in AuditStore.open(db).decisions("alice")}


def test_pending_decisions_with_quotes_commas_and_line_breaks_round_trip(runner, audit_db):
    pending = _keep(audit_db, [
        Decision("alice", QUOTED_ID, "reject", reason="other", comment=SAID_NO),
        Decision("alice", COMMA_ID, "correct", expert_code="E11.65", comment="glucose 310\nketones negative"),
    ])
    result = _start(runner, audit_db)
    assert result.exit_code == 0, result.stderr
    assert "Wrote 2 decision(s) kept in" in result.stderr
    assert _stored(audit_db) == {QUOTED_ID: ("reject", None, "other", SAID_NO),
                                 COMMA_ID: ("correct", "E11.65", None, "glucose 310\nketones negative")}
    assert not pending.exists() and not list(audit_db.parent.glob("*.rejected*"))


def test_a_case_decided_twice_while_locked_keeps_the_later_decision(runner, audit_db):
    pending = _keep(audit_db, [
        Decision("alice", "n3", "accept"),
        Decision("alice", "n4", "accept"),
        Decision("alice", "n3", "reject", reason="other", comment="changed my mind after the x-ray"),
    ])
    result = _start(runner, audit_db)
    assert result.exit_code == 0, result.stderr
    assert "Wrote 3 decision(s)" in result.stderr and "could not be written" not in result.stderr
    assert _stored(audit_db)["n3"] == ("reject", None, "other", "changed my mind after the x-ray")
    assert not pending.exists() and not list(audit_db.parent.glob("*.rejected*"))


def test_pending_rows_that_cannot_be_written_are_kept_and_never_overwritten(runner, audit_db):
    _keep(audit_db, [Decision("alice", "n4", "accept"), Decision("alice", "n5", "correct", expert_code="K35.2")])
    first = _start(runner, audit_db)
    assert "Wrote 1 decision(s)" in first.stderr and "K35.2 is a header" in first.stdout
    kept = pending_path(AuditStore.open(audit_db), "alice").with_name("audit.duckdb.alice.pending.csv.rejected")
    _keep(audit_db, [Decision("alice", "n2", "correct", expert_code="Q99.99", comment=SAID_NO)])
    second = _start(runner, audit_db)
    assert "Wrote 0 decision(s)" in second.stderr
    with open(kept, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["case_id"], r["code"], r["comment"]) for r in rows] == [("n5", "K35.2", ""), ("n2", "Q99.99", SAID_NO)]
    assert "n2" not in _stored(audit_db) and _stored(audit_db)["n4"][0] == "accept"
    again = runner.invoke(app, ["audit", "import", str(kept), "--db", str(audit_db)])  # still importable as it is
    assert again.exit_code == 1 and "0 decision(s), 0 unchanged, 2 rejected" in again.stderr


def test_decisions_kept_in_the_home_fallback_are_written_too(runner, audit_db, icdreason_home):
    fallback = icdreason_home / "audit-pending" / pending_path(AuditStore.open(audit_db), "alice").name
    fallback.parent.mkdir(parents=True)
    _keep(audit_db, [Decision("alice", "n4", "accept")], path=fallback)
    result = _start(runner, audit_db)
    assert result.exit_code == 0, result.stderr
    assert "Wrote 1 decision(s)" in result.stderr and str(fallback) in result.stderr
    assert _stored(audit_db)["n4"][0] == "accept" and not fallback.exists()


def test_import_reads_standard_quoting(runner, audit_db, tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text('case_id,reviewer,decision,code,reason,comment\n'
                     '"n""1",alice,reject,,other,"Patient said ""no"", see chart"\n'
                     '"n,2",alice,correct,E11.65,,"two\nlines"\n', encoding="utf-8")
    result = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db)])
    assert result.exit_code == 0, result.stderr
    assert "imported 2 decision(s), 0 unchanged, 0 rejected" in result.stderr
    assert _stored(audit_db) == {QUOTED_ID: ("reject", None, "other", SAID_NO),
                                 COMMA_ID: ("correct", "E11.65", None, "two\nlines")}


def test_import_refuses_a_row_with_more_fields_than_the_header(runner, audit_db, tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text('case_id,reviewer,decision,code,reason,comment\n'
                     'n4,alice,reject,,other,Patient said "no", see chart\n'
                     'n3,alice,accept,,,\n', encoding="utf-8")
    out = tmp_path / "rejected.csv"
    result = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db), "--rejected-out", str(out)])
    assert result.exit_code == 1
    assert "imported 1 decision(s), 0 unchanged, 1 rejected" in result.stderr
    with open(out, newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["line"] == "2" and row["error"] == ("7 fields but the header has 6: put a field that contains a comma "
                                                   "in double quotes")
    assert "n4" not in _stored(audit_db)
