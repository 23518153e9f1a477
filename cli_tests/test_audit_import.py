"""`icdreason audit import`: offline decisions from a CSV, validated row by row."""

from __future__ import annotations

import csv

import pytest
from audit_fixtures import write_predictions

from icdreason.audit import AuditStore
from icdreason.cli import app

GOOD_AND_BAD = """case_id,reviewer,decision,code,reason,comment,seconds
n1,alice,accept,,,,31.5
n2,alice,correct,E11.65,,hyperglycemia documented,40
n3,alice,reject,,Premature closure,,12
n4,alice,correct,K35.2,,,
n5,alice,correct,Q99.99,,,
n9,alice,accept,,,,
n1,bob,accept,,,,
n5,alice,reject,,bored,,
n5,alice,maybe,,,,
n2,alice,accept,,,,
n4,alice,accept,K35.80,,,-3
n5,alice,correct,N39.0,,,
n4,alice,reject,,other,,
"""


@pytest.fixture
def audit_db(tmp_path, built_kb, monkeypatch, runner):
    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    preds = write_predictions(tmp_path / "pred.jsonl")
    db = tmp_path / "audit.duckdb"
    result = runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db)], input="q\n")
    assert result.exit_code == 0, result.stderr
    return db


def test_import_reports_each_rejected_row(audit_db, tmp_path, runner):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(GOOD_AND_BAD)
    out = tmp_path / "rejected.csv"
    result = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db), "--rejected-out", str(out)])
    assert result.exit_code == 1
    assert "imported 3 decision(s), 0 unchanged, 10 rejected" in result.stderr
    with open(out, newline="") as fh:
        rejected = {int(r["line"]): r["error"] for r in csv.DictReader(fh)}
    assert rejected[5].startswith("code 'K35.2': K35.2 is a header, not billable")
    assert "Q99.99 is not in ICD-10-CM" in rejected[6]
    assert rejected[7] == "case 'n9' is not in this audit"
    assert rejected[8].startswith("unknown reviewer 'bob' (known: alice): fix the name or pass --add-reviewer bob")
    assert rejected[9].startswith("reason 'bored' is not one of: 1 wrong chapter, 2 not specific enough, ")
    assert rejected[9].endswith("7 other (the number or the label)")
    assert rejected[10] == "decision 'maybe' is not accept, correct, reject or skip"
    assert rejected[11] == "duplicate of line 3"
    assert rejected[12] == "seconds cannot be negative"
    assert rejected[13] == "correct with the model's own code N39.0: use decision accept"
    assert rejected[14] == "reason 'other' needs a comment"
    stored = [(d.case_id, d.decision, d.expert_code, d.reason, d.comment, d.seconds, d.source)
              for d in AuditStore.open(audit_db).decisions()]
    assert stored == [
        ("n1", "accept", None, None, None, 31.5, "import:sheet.csv"),
        ("n2", "correct", "E11.65", None, "hyperglycemia documented", 40.0, "import:sheet.csv"),
        ("n3", "reject", None, "premature_closure", None, 12.0, "import:sheet.csv"),
    ]


def test_add_reviewer_dry_run_and_unchanged_rows(audit_db, tmp_path, runner):
    sheet = tmp_path / "bob.csv"
    sheet.write_text("Case ID;Reviewer;Decision;Expert code\nn1;bob;c;I21.9\nn2;bob;a;\n")  # Excel-style header, ;
    dry = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db), "--add-reviewer", "bob",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
    assert "would import 2 decision(s)" in dry.stderr
    assert AuditStore.open(audit_db).decisions() == []
    first = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db), "--add-reviewer", "bob"])
    assert first.exit_code == 0, first.stderr
    again = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db)])  # bob is known now
    assert "imported 0 decision(s), 2 unchanged, 0 rejected" in again.stderr
    store = AuditStore.open(audit_db)
    assert "bob" in store.reviewers()
    assert [(d.reviewer, d.case_id, d.decision, d.expert_code) for d in store.decisions()] == [
        ("bob", "n1", "correct", "I21.9"), ("bob", "n2", "accept", None)]


def test_import_file_problems_are_one_line_errors(audit_db, tmp_path, runner):
    missing = runner.invoke(app, ["audit", "import", str(tmp_path / "nope.csv"), "--db", str(audit_db)])
    assert missing.exit_code == 2 and "file not found" in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("id,who,what\nn1,alice,accept\n")
    result = runner.invoke(app, ["audit", "import", str(bad), "--db", str(audit_db)])
    assert result.exit_code == 2
    assert "lacks the column(s) reviewer, decision" in result.stderr
    no_audit = runner.invoke(app, ["audit", "import", str(bad), "--db", str(tmp_path / "empty.duckdb")])
    assert no_audit.exit_code == 1 and "holds no audit yet" in no_audit.stderr


def test_import_takes_the_reason_numbers_of_the_review_screens(audit_db, tmp_path, runner):
    # The terminal and the web page ask "reason (1-7)": a sheet filled in with those numbers imports as the labels.
    sheet = tmp_path / "numbers.csv"
    sheet.write_text("case_id,reviewer,decision,code,reason,comment\n"
                     "n1,alice,reject,,3,\nn2,alice,reject,,5,\nn3,alice,reject,,7,see note\nn4,alice,reject,,8,\n")
    result = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db)])
    assert result.exit_code == 1 and "imported 3 decision(s)" in result.stderr
    assert "reason '8' is not one of: 1 wrong chapter" in result.stdout
    reasons = {d.case_id: d.reason for d in AuditStore.open(audit_db).decisions()}
    assert reasons == {"n1": "not_supported", "n2": "missed_severity", "n3": "other"}


def test_import_can_start_an_audit_on_all_records(tmp_path, built_kb, monkeypatch, runner):
    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    preds = write_predictions(tmp_path / "pred.jsonl")
    sheet = tmp_path / "s.csv"
    sheet.write_text("case_id,reviewer,decision,code,reason\nn4,dana,reject,,missed severity\n")
    db = tmp_path / "offline.duckdb"
    result = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(db), "--predictions", str(preds),
                                 "--add-reviewer", "dana"])
    assert result.exit_code == 0, result.stderr
    store = AuditStore.open(db)
    assert len(store.cases()) == 5 and store.info().strategy == "all"
    assert [(d.case_id, d.reason) for d in store.decisions()] == [("n4", "missed_severity")]
