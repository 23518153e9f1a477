"""Text that cannot be encoded, and line breaks inside JSONL lines: a flagged record, never a crash or a lost id.

JSON can carry a lone surrogate (``"\\ud83d"``: half of an emoji) that no UTF-8 file, Arrow array or DuckDB column can
hold. It is replaced (U+FFFD) when a table is read and again when a record is written, and the record says so.
"""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from icdreason.cli import app
from icdreason.notes import read_notes
from icdreason.records import PredictionDB, Record, open_writer, read_predictions
from icdreason.tables import read_rows

SURROGATE_LINE = '{"id": "chest\\ud83d", "text": "chest pain \\ud83d NSTEMI, troponin elevated"}'


def test_a_lone_surrogate_in_a_note_is_a_flagged_record_and_resume_and_eval_work(runner, use_kb, tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "first", "text": "fever and productive cough, pneumonia"}) + "\n"
                     + SURROGATE_LINE + "\n"
                     + json.dumps({"id": "last", "text": "hip fracture after a fall"}) + "\n")
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(app, ["predict", str(notes), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    rows = read_predictions(out)
    assert [r["id"] for r in rows] == ["first", "chest\ufffd", "last"]
    odd = rows[1]
    assert odd["note"] == "chest pain \ufffd NSTEMI, troponin elevated"
    assert "decoded_with_replacement" in odd["flags"] and odd["code"]
    resumed = runner.invoke(app, ["predict", str(notes), "--out", str(out), "--resume", "-q"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "3 already there" in resumed.stderr and len(read_predictions(out)) == 3
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "first", "gold": "J18.9"}\n{"id": "chest\\ud83d", "gold": "I21.4"}\n'
                    '{"id": "last", "gold": "S72.001A"}\n')
    scored = runner.invoke(app, ["eval", str(out), "--gold", str(gold)])
    assert scored.exit_code == 0, scored.stderr
    # the Rows table: 3 scored, 0 missing, 0 extra (the surrogate id in the gold file matches the record's id)
    assert re.search(r"│ pred\s+│\s+3 │\s+0 │\s+0 │", scored.stdout), scored.stdout


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.parquet", "log.duckdb", "-"])
def test_every_writer_replaces_text_that_cannot_be_encoded_and_flags_the_record(tmp_path, name, capsys):
    record = Record(id="n\udc80", source="s", run_id="r", engine="e", model=None, uses_llm=True,
                    trace="the model said \ud83d then stopped", flags=["truncated"], error="server said \udfff")
    if name == "log.duckdb":
        db = PredictionDB(tmp_path / name)
        db.start_run("r", {"engine": "e", "uses_llm": True, "command": "icdreason predict caf\udce9.jsonl"})
        db.write_batch([record])
        db.close()
    else:
        with open_writer(tmp_path / name if name != "-" else name) as writer:
            writer.write_batch([record])
    if name == "-":
        rows = [json.loads(capsys.readouterr().out)]
    else:
        rows = read_predictions(tmp_path / name)
    assert [(r["id"], r["trace"], r["error"]) for r in rows] == [
        ("n\ufffd", "the model said \ufffd then stopped", "server said \ufffd")]
    assert rows[0]["flags"] == ["truncated", "text_replaced"]
    if name == "log.duckdb":
        con = duckdb.connect(str(tmp_path / name), read_only=True)
        assert con.execute("SELECT command FROM runs").fetchall() == [("icdreason predict caf\ufffd.jsonl",)]
        con.close()


def test_jsonl_lines_end_at_a_newline_only(tmp_path):
    """U+2028, U+2029 and U+0085 are line breaks to str.splitlines() but text inside a JSON string; a raw CR is JSON
    whitespace. None of them ends a JSONL line: each note keeps its id."""
    notes = tmp_path / "notes.jsonl"
    with open(notes, "w", encoding="utf-8", newline="") as fh:
        fh.write(json.dumps({"id": "ls", "text": "chest pain\u2028radiating to the arm"}, ensure_ascii=False) + "\n")
        fh.write(json.dumps({"id": "ps", "text": "first\u2029second paragraph"}, ensure_ascii=False) + "\n")
        fh.write(json.dumps({"id": "nel", "text": "fever\u0085productive cough"}, ensure_ascii=False) + "\n")
        fh.write('{"id": "cr",\r "text": "hip fracture\\rafter a fall"}\n')
        fh.write('{"id": "crlf", "text": "cellulitis of the leg"}\r\n')
    read = read_notes([str(notes)])
    assert [(n.id, n.flags, n.problem) for n in read] == [(i, [], None) for i in ("ls", "ps", "nel", "cr", "crlf")]
    assert read[0].text == "chest pain\u2028radiating to the arm" and read[2].text == "fever\u0085productive cough"
    assert read[3].text == "hip fracture\nafter a fall"  # a CR inside the text is a line break of the note
    rows = read_rows(notes)
    assert rows.get("id") == ["ls", "ps", "nel", "cr", "crlf"]
    assert read_notes(["-"], text_column="text", stdin=_Stdin(notes.read_bytes()))[3].id == "cr"


class _Stdin:
    def __init__(self, data: bytes):
        self.data = data

    def read(self) -> bytes:
        return self.data
