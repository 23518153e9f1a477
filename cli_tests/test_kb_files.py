"""What `--kb` points at: a knowledge base is only ever built over a knowledge base (or nothing), and a file that is
not one — a prediction log, an audit database, a folder, a damaged file — gets a one-line error whose advice fits
what the file is."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from icdreason.cli import app


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(result) -> str:
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture
def other_stores(tmp_path):
    """A prediction log and an audit database, as `predict --db` and `audit start` leave them."""
    from icdreason.audit.store import AuditStore
    from icdreason.records import PredictionDB

    log = tmp_path / "preds.duckdb"
    db = PredictionDB(log)
    db.start_run("r1", {"engine": "retriever"})
    db.close()
    audit = tmp_path / "audit.duckdb"
    AuditStore.open(audit)
    return {"prediction log": log, "audit database": audit}


def test_identify_names_every_kind_of_file(built_kb, other_stores, tmp_path):
    from icdreason.db import identify

    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "notes.csv").write_text("id,text\nn1,chest pain\n")
    (tmp_path / "cut.duckdb").write_bytes(built_kb.read_bytes()[:100_000])
    assert identify(built_kb) == "knowledge base"
    assert identify(other_stores["prediction log"]) == "prediction log"
    assert identify(other_stores["audit database"]) == "audit database"
    assert identify(tmp_path / "empty") == "empty file"
    assert identify(tmp_path / "notes.csv") == "file that is not a DuckDB database"
    assert identify(tmp_path / "cut.duckdb") == "damaged DuckDB file"
    assert identify(tmp_path) == "folder"
    assert identify(tmp_path / "missing.duckdb") is None


@pytest.mark.parametrize("kind", ["prediction log", "audit database"])
def test_build_force_never_overwrites_another_store(runner, other_stores, kind):
    path = other_stores[kind]
    before = _sha(path)
    opened = runner.invoke(app, ["kb", "info", "--kb", str(path)])
    assert opened.exit_code == 1
    message = _one_line(opened)
    assert f"is an icdreason {kind}, not a knowledge base" in message
    assert "--force" not in message and "pass --kb the knowledge-base file" in message
    built = runner.invoke(app, ["kb", "build", "--force", "--kb", str(path)])
    assert built.exit_code == 1
    assert f"is an icdreason {kind}, not a knowledge base: refusing to build over it" in _one_line(built)
    assert _sha(path) == before


def test_build_force_never_overwrites_a_file_it_cannot_identify(runner, tmp_path):
    notes = tmp_path / "notes.csv"
    notes.write_text("id,text\nn1,chest pain\n")
    opened = runner.invoke(app, ["kb", "lookup", "I21.4", "--kb", str(notes)])
    assert opened.exit_code == 1 and "--force" not in _one_line(opened)
    built = runner.invoke(app, ["kb", "build", "--force", "--kb", str(notes)])
    assert built.exit_code == 1
    assert "is a file that is not a DuckDB database, not a knowledge base" in _one_line(built)
    assert notes.read_text() == "id,text\nn1,chest pain\n"


def test_kb_pointing_at_a_folder_is_one_line(runner, tmp_path):
    folder = tmp_path / "kbdir"
    folder.mkdir()
    for args in (["kb", "build", "--force", "--kb", str(folder)], ["kb", "build", "--kb", str(folder)],
                 ["kb", "info", "--kb", str(folder)]):
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2), args
        assert "is a folder" in _one_line(result) and "--force" not in result.stderr
    assert list(folder.iterdir()) == []


def test_truncated_knowledge_base_is_one_line_everywhere(runner, built_kb, tmp_path):
    data = built_kb.read_bytes()
    head = tmp_path / "head.duckdb"  # cut in its first blocks: DuckDB cannot open it
    head.write_bytes(data[:100_000])
    opened = runner.invoke(app, ["kb", "info", "--kb", str(head)])
    assert opened.exit_code == 1
    message = _one_line(opened)
    assert "delete it and run `icdreason kb build`" in message and "--force" not in message
    refused = runner.invoke(app, ["kb", "build", "--force", "--kb", str(head)])
    assert refused.exit_code == 1 and "damaged DuckDB file" in _one_line(refused)

    tail = tmp_path / "tail.duckdb"  # cut near its end: it opens, and a later read fails
    tail.write_bytes(data[:len(data) - 1_500_000])
    for args in (["kb", "lookup", "I21.4"], ["kb", "search", "chest pain"]):
        result = runner.invoke(app, [*args, "--kb", str(tail)])
        assert result.exit_code == 1, args
        message = _one_line(result)
        assert str(tail) in message and "damaged" in message, message
        assert "run `icdreason kb build --force` to rebuild it" in message  # it is a knowledge base: safe to rebuild


def test_build_force_replaces_an_empty_file_and_an_old_knowledge_base(runner, built_kb, tmp_path):
    import duckdb

    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    built = runner.invoke(app, ["kb", "build", "--force", "--kb", str(empty)])
    assert built.exit_code == 0, built.stderr
    old = tmp_path / "old.duckdb"
    shutil.copy(built_kb, old)
    con = duckdb.connect(str(old))
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    refused = runner.invoke(app, ["kb", "info", "--kb", str(old)])
    assert "schema version 0" in refused.stderr and "kb build --force" in refused.stderr
    assert runner.invoke(app, ["kb", "build", "--force", "--kb", str(old)]).exit_code == 0
    assert runner.invoke(app, ["kb", "info", "--kb", str(old)]).exit_code == 0
