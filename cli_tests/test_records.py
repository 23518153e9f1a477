"""The records package: the frozen prediction-log schema, files of the previous schema, and the column-type table."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest

from icdreason.errors import InputError
from icdreason.records import COLUMNS, FIELDS, PredictionDB, Record, open_writer, read_predictions

#: The columns a fresh prediction log gets, exactly (name, DuckDB type), in order. A change here is a new migration.
EXPECTED = {
    "_migrations": [("name", "VARCHAR"), ("applied_at", "TIMESTAMP")],
    "runs": [
        ("run_id", "VARCHAR"), ("started_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"), ("status", "VARCHAR"),
        ("engine", "VARCHAR"), ("model", "VARCHAR"), ("uses_llm", "BOOLEAN"), ("options", "JSON"),
        ("parameters", "JSON"), ("prompt_template", "VARCHAR"), ("prompt_template_hash", "VARCHAR"),
        ("kb_release", "VARCHAR"), ("kb_path", "VARCHAR"), ("icdreason_version", "VARCHAR"), ("command", "VARCHAR"),
        ("out_path", "VARCHAR"), ("notes", "INTEGER"), ("seconds", "DOUBLE"), ("engine_seconds", "DOUBLE"),
        ("tokens_in", "BIGINT"), ("tokens_out", "BIGINT"), ("sessions", "INTEGER"),
    ],
    "predictions": [
        ("id", "VARCHAR"), ("source", "VARCHAR"), ("run_id", "VARCHAR"), ("engine", "VARCHAR"), ("model", "VARCHAR"),
        ("uses_llm", "BOOLEAN"), ("parameters", "JSON"), ("note", "VARCHAR"), ("trace", "VARCHAR"),
        ("code_raw", "VARCHAR"), ("code", "VARCHAR"), ("format_ok", "BOOLEAN"), ("parse_note", "VARCHAR"),
        ("status", "VARCHAR"), ("description", "VARCHAR"), ("chapter", "INTEGER"), ("category", "VARCHAR"),
        ("suggestions", "JSON"), ("confidence", "JSON"), ("top_k", "JSON"), ("symptoms", "VARCHAR"),
        ("symptoms_from", "VARCHAR"), ("guideline", "VARCHAR"), ("guideline_section", "VARCHAR"),
        ("tokens_in", "BIGINT"), ("tokens_out", "BIGINT"), ("seconds", "DOUBLE"), ("flags", "JSON"),
        ("error", "VARCHAR"), ("raw", "JSON"), ("written_at", "TIMESTAMP"), ("tabular_notes", "VARCHAR"),
        ("enrichment_source", "VARCHAR"), ("candidate_share", "JSON"),
    ],
}

# What `icdreason predict --db` wrote before this package existed (migrations 0001 and 0002 as released), literally.
PREVIOUS_SCHEMA = """
CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP);
CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
    status VARCHAR NOT NULL, engine VARCHAR NOT NULL, model VARCHAR, uses_llm BOOLEAN NOT NULL, options JSON,
    parameters JSON, prompt_template VARCHAR, prompt_template_hash VARCHAR, kb_release VARCHAR, kb_path VARCHAR,
    icdreason_version VARCHAR, command VARCHAR, out_path VARCHAR, notes INTEGER DEFAULT 0, seconds DOUBLE DEFAULT 0,
    engine_seconds DOUBLE DEFAULT 0, tokens_in BIGINT DEFAULT 0, tokens_out BIGINT DEFAULT 0,
    sessions INTEGER DEFAULT 1);
CREATE TABLE predictions (id VARCHAR, source VARCHAR, run_id VARCHAR, engine VARCHAR, model VARCHAR,
    uses_llm BOOLEAN, parameters JSON, note VARCHAR, trace VARCHAR, code_raw VARCHAR, code VARCHAR,
    format_ok BOOLEAN, parse_note VARCHAR, status VARCHAR, description VARCHAR, chapter INTEGER, category VARCHAR,
    suggestions JSON, confidence JSON, top_k JSON, symptoms VARCHAR, symptoms_from VARCHAR, guideline VARCHAR,
    guideline_section VARCHAR, tokens_in BIGINT, tokens_out BIGINT, seconds DOUBLE, flags JSON, error VARCHAR,
    raw JSON, written_at TIMESTAMP, PRIMARY KEY (run_id, id));
INSERT INTO _migrations VALUES ('0001_runs', TIMESTAMP '2026-03-01 09:00:00'),
                               ('0002_predictions', TIMESTAMP '2026-03-01 09:00:00');
INSERT INTO runs (run_id, started_at, status, engine, uses_llm) VALUES
    ('20260301T090000-aaaaaa', TIMESTAMP '2026-03-01 09:00:00', 'finished', 'retriever', false);
INSERT INTO predictions (id, source, run_id, engine, uses_llm, parameters, code, format_ok, status, chapter,
                         suggestions, confidence, top_k, flags, tokens_in, tokens_out, seconds, written_at) VALUES
    ('old1', 'notes/old1.txt', '20260301T090000-aaaaaa', 'retriever', false, '{"n": 1}', 'I21.4', true, 'billable',
     9, '[]', '{"code": 1.0, "category": 1.0, "chapter": 1.0}', '[{"code": "I21.4", "support": 1.0}]', '[]',
     0, 0, 0.01, TIMESTAMP '2026-03-01 09:00:01');
"""


def _columns(con, table: str) -> list[tuple[str, str]]:
    return con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                       "ORDER BY ordinal_position", [table]).fetchall()


def _record(rid: str, run_id: str = "run-1", **extra) -> Record:
    return Record(id=rid, source=f"notes/{rid}.txt", run_id=run_id, engine="openai", model="m", uses_llm=True,
                  code="E11.65", format_ok=True, status="billable", chapter=4, category="E11",
                  suggestions=["E11.9"], top_k=[{"code": "E11.65", "support": 1.0}], flags=["truncated"], **extra)


def test_a_fresh_prediction_log_has_exactly_the_released_columns(tmp_path):
    db = PredictionDB(tmp_path / "log.duckdb")
    db.close()
    con = duckdb.connect(str(tmp_path / "log.duckdb"), read_only=True)
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    assert tables == ["_migrations", "predictions", "runs"]
    for table, columns in EXPECTED.items():
        assert _columns(con, table) == columns, table
    assert [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()] == [
        "0001_runs", "0002_predictions", "0003_honest_fields"]


def test_a_log_of_the_previous_schema_is_written_and_read(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(PREVIOUS_SCHEMA)
    con.close()
    db = PredictionDB(path)  # adds the columns of 0003, keeps the old rows
    db.start_run("run-2", {"engine": "retriever", "uses_llm": False})
    db.write_batch([_record("new1", "run-2"), _record("new2", "run-2", note="Chest pain.")])
    db.write_batch([_record("new1", "run-2")])  # already there: left as it is
    assert db.done_ids("run-2") == {"new1", "new2"}
    assert [r.id for r in db.records("20260301T090000-aaaaaa", {"old1"})] == ["old1"]
    db.close()
    rows = read_predictions(path)
    assert [(r["id"], r["run_id"], r["code"]) for r in rows] == [
        ("old1", "20260301T090000-aaaaaa", "I21.4"), ("new1", "run-2", "E11.65"), ("new2", "run-2", "E11.65")]
    # the old retriever row said format_ok true and kept its candidate share in confidence: read as written today
    assert rows[0]["confidence"] is None and rows[0]["candidate_share"] == {"code": 1.0, "category": 1.0, "chapter": 1.0}
    assert rows[0]["format_ok"] is None and rows[0]["parameters"] == {"n": None}
    assert rows[2]["note"] == "Chest pain." and "note" not in rows[1]
    assert rows[1]["top_k"] == [{"code": "E11.65", "support": 1.0}] and rows[1]["chapter"] == 4
    assert [r["id"] for r in read_predictions(path, run_id="run-2")] == ["new1", "new2"]


def test_a_batch_is_read_back_in_the_order_it_was_written(tmp_path):
    db = PredictionDB(tmp_path / "log.duckdb")
    db.start_run("run-1", {"engine": "retriever", "uses_llm": False})
    ids = [f"n{i:02d}" for i in range(40)][::-1]  # not sorted, so no index can hand them back in order by chance
    db.write_batch([_record(i) for i in ids] + [_record(ids[0], error="a second copy")])
    db.write_batch([_record("n00"), _record("late")])  # n00 is already there: only "late" is added
    db.close()
    rows = read_predictions(tmp_path / "log.duckdb")
    assert [r["id"] for r in rows] == [*ids, "late"]
    assert rows[0]["error"] is None  # the first copy of an id in a batch is the one kept


def test_a_log_missing_the_predictions_migration_gets_it_on_open(tmp_path):
    path = tmp_path / "half.duckdb"
    con = duckdb.connect(str(path))
    con.execute(PREVIOUS_SCHEMA.split("CREATE TABLE predictions")[0])
    con.execute("INSERT INTO _migrations VALUES ('0001_runs', now())")
    con.close()
    PredictionDB(path).close()
    con = duckdb.connect(str(path), read_only=True)
    assert _columns(con, "predictions") == EXPECTED["predictions"]


def test_other_duckdb_files_are_refused_with_one_line(tmp_path):
    other = tmp_path / "mine.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE patients (id INTEGER)")
    con.close()
    with pytest.raises(InputError, match="not an icdreason prediction log: choose another --db"):
        PredictionDB(other)
    with pytest.raises(InputError, match="has no predictions table"):
        read_predictions(other)
    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    with pytest.raises(InputError, match="notes.db is a file that is not a DuckDB database, not a prediction log: "
                                         "choose another --db"):
        PredictionDB(text)


def test_column_types_come_from_the_record_fields():
    assert tuple(COLUMNS) == FIELDS
    # written_at is the log's own column
    assert [(c.name, c.sql) for c in COLUMNS.values()] == [c for c in EXPECTED["predictions"] if c[0] != "written_at"]
    assert COLUMNS["chapter"].from_csv("9") == 9 and COLUMNS["format_ok"].from_csv("true") is True
    assert COLUMNS["suggestions"].from_csv("") == [] and COLUMNS["note"].from_csv("") == ""
    assert COLUMNS["status"].from_csv("") is None and COLUMNS["raw"].from_csv("") is None


def test_csv_and_parquet_keep_types_and_awkward_text(tmp_path):
    awkward = 'He said "stop", then left;\nnew line, comma\t tab =cmd'
    records = [_record("a", note=awkward, trace='quote " inside'), _record("b", note="", error="engine, said \"no\"")]
    for name in ("out.csv", "out.parquet"):
        with open_writer(tmp_path / name) as writer:
            writer.write_batch(records)
        rows = read_predictions(tmp_path / name)
        assert [r["note"] for r in rows] == [awkward, ""], name
        assert rows[0]["trace"] == 'quote " inside' and rows[1]["error"] == 'engine, said "no"'
        assert rows[0]["chapter"] == 4 and rows[0]["format_ok"] is True and rows[0]["suggestions"] == ["E11.9"]
        assert rows[0]["top_k"] == [{"code": "E11.65", "support": 1.0}] and rows[0]["parameters"] == {}
        assert [Record(**r) for r in rows] == records
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert str(schema.field("chapter").type) == "int32"
    assert schema.field("parameters").type.field("temperature").type == "double"  # a struct, as confidence is
    assert str(schema.field("confidence").type) == "struct<code: double, category: double, chapter: double>"


def _retriever_record(rid: str) -> Record:
    """A retriever record as `icdreason predict` writes it: what describes a model or a prompt is null."""
    return Record(id=rid, source=f"notes/{rid}.txt", run_id="run-r", engine="retriever", model=None, uses_llm=False,
                  parameters={"temperature": None, "prompt_template_sha256": None, "max_note_chars": 8000},
                  code="I21.4", code_raw="I21.4", format_ok=None, status="billable", chapter=9, category="I21",
                  confidence=None, candidate_share={"code": 0.21, "category": 0.79, "chapter": 0.94},
                  top_k=[{"code": "I21.4", "support": 0.21}], tabular_notes="ICD-10-CM Tabular List notes\nI21.4 x",
                  enrichment_source="tabular", note="Chest pain.")


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv", "out.parquet", "log.duckdb"])
def test_null_fields_of_a_retriever_record_survive_every_format(tmp_path, name):
    records = [_retriever_record("a"), _record("b", note="Cough.")]
    if name.endswith(".duckdb"):
        db = PredictionDB(tmp_path / name)
        db.start_run("run-r", {"engine": "retriever", "uses_llm": False})
        db.write_batch(records)
        db.close()
    else:
        with open_writer(tmp_path / name) as writer:
            writer.write_batch(records)
    rows = read_predictions(tmp_path / name)
    assert rows[0]["format_ok"] is None and rows[0]["confidence"] is None
    assert rows[0]["candidate_share"] == {"code": 0.21, "category": 0.79, "chapter": 0.94}
    assert rows[0]["parameters"]["temperature"] is None and rows[0]["enrichment_source"] == "tabular"
    # the model's record keeps its vote share and format check, and has no candidate share
    assert rows[1]["format_ok"] is True and rows[1]["confidence"] == {"code": 0.0, "category": 0.0, "chapter": 0.0}
    assert rows[1]["candidate_share"] is None
    assert [Record(**{k: v for k, v in r.items() if k in COLUMNS}) for r in rows] == records


def test_a_retriever_file_of_the_previous_version_is_read_as_this_one_writes(tmp_path):
    import json

    old = {"id": "old1", "source": "n.txt", "run_id": "r0", "engine": "retriever", "model": None, "uses_llm": False,
           "parameters": {"n": 1, "temperature": 0.0, "max_new_tokens": 1024, "prompt_template": "deepicd_r1",
                          "prompt_template_sha256": "82b8", "max_note_chars": 8000, "kb_release": "2026"},
           "code": "I21.4", "format_ok": True, "status": "billable",
           "confidence": {"code": 0.14, "category": 0.6, "chapter": 0.9}}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n")
    row, = read_predictions(path)
    assert row["candidate_share"] == {"code": 0.14, "category": 0.6, "chapter": 0.9} and row["confidence"] is None
    assert row["format_ok"] is None
    assert row["parameters"] == {"n": None, "temperature": None, "max_new_tokens": None, "prompt_template": None,
                                 "prompt_template_sha256": None, "max_note_chars": 8000, "kb_release": "2026"}
    # --resume appends to such a file: the old record is read back as a Record of this version
    with open_writer(path, resume=True) as writer:
        assert writer.done_ids == {"old1"} and writer.records({"old1"})[0].candidate_share["code"] == 0.14
