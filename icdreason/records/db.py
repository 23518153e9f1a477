"""The DuckDB prediction log (``--db FILE``): a ``runs`` table and a ``predictions`` table keyed by run id.

The schema comes from ordered, named migrations recorded in ``_migrations`` and applied on every open
(:func:`icdreason.db.open_db`). A released migration is frozen: it lists its columns literally, so a later change to
:class:`Record` is a new migration (``ALTER TABLE predictions ADD COLUMN ...``) and old files keep working. Inserts name
their columns for the same reason. Each batch is inserted in one transaction, so a killed process leaves whole
batches only; ``--resume`` skips the ids the run already has. A writer locks the file first
(:class:`~icdreason.locks.FileLock`): one run writes a log at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..db import Store, connect, interruptible, open_db
from ..encodable import make_encodable
from ..errors import InputError
from ..locks import FileLock
from ..redact import mask
from ..tables import duckdb_rows
from .record import COLUMNS, FIELDS, Record, make_records_encodable, upgrade_row

__all__ = ["PredictionDB", "read_db_predictions", "MIGRATIONS", "STORE"]


def _m0001_runs(con) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            status VARCHAR NOT NULL,            -- running | finished | interrupted | failed
            engine VARCHAR NOT NULL,
            model VARCHAR,
            uses_llm BOOLEAN NOT NULL,
            options JSON,                       -- engine options
            parameters JSON,                    -- sampling, prompt, truncation, self-consistency settings
            prompt_template VARCHAR,            -- template name or path
            prompt_template_hash VARCHAR,       -- sha256 of the template text
            kb_release VARCHAR,
            kb_path VARCHAR,
            icdreason_version VARCHAR,
            command VARCHAR,
            out_path VARCHAR,
            notes INTEGER DEFAULT 0,            -- notes predicted by this run (all sessions of a resumed run)
            seconds DOUBLE DEFAULT 0,           -- wall time (summed over resumed sessions)
            engine_seconds DOUBLE DEFAULT 0,
            tokens_in BIGINT DEFAULT 0,
            tokens_out BIGINT DEFAULT 0,
            sessions INTEGER DEFAULT 1          -- 1 + the number of --resume continuations
        );
        """
    )


def _m0002_predictions(con) -> None:
    con.execute(
        """
        CREATE TABLE predictions (
            id VARCHAR,
            source VARCHAR,
            run_id VARCHAR,
            engine VARCHAR,
            model VARCHAR,
            uses_llm BOOLEAN,
            parameters JSON,
            note VARCHAR,
            trace VARCHAR,
            code_raw VARCHAR,
            code VARCHAR,
            format_ok BOOLEAN,
            parse_note VARCHAR,
            status VARCHAR,
            description VARCHAR,
            chapter INTEGER,
            category VARCHAR,
            suggestions JSON,
            confidence JSON,
            top_k JSON,
            symptoms VARCHAR,
            symptoms_from VARCHAR,
            guideline VARCHAR,
            guideline_section VARCHAR,
            tokens_in BIGINT,
            tokens_out BIGINT,
            seconds DOUBLE,
            flags JSON,
            error VARCHAR,
            raw JSON,
            written_at TIMESTAMP,
            PRIMARY KEY (run_id, id)
        );
        """
    )


def _m0003_honest_fields(con) -> None:
    """The retriever's candidate share (no longer in ``confidence``) and where a record's enrichment came from."""
    con.execute(
        """
        ALTER TABLE predictions ADD COLUMN tabular_notes VARCHAR;
        ALTER TABLE predictions ADD COLUMN enrichment_source VARCHAR;   -- scraped | tabular | NULL
        ALTER TABLE predictions ADD COLUMN candidate_share JSON;        -- the retriever's; NULL for LLM engines
        """
    )


#: The prediction log's schema. Released migrations are frozen: add new ones at the end, never edit these.
MIGRATIONS: list[tuple[str, Callable]] = [("0001_runs", _m0001_runs), ("0002_predictions", _m0002_predictions),
                                          ("0003_honest_fields", _m0003_honest_fields)]
STORE = Store("prediction log", MIGRATIONS, InputError, fix="choose another --db",
              lock_fix="wait for it or use another --db")


class PredictionDB:
    """An open prediction log. ``start_run``, ``write_batch``, ``finish_run``; ``done_ids`` for --resume."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        # one run writes a log at a time; the lock names it to a second one (DuckDB's own lock names a pid only)
        self._lock = FileLock.acquire(self.path, fix="wait for it to finish or use another --db")
        try:
            self.con = open_db(self.path, STORE)
        except BaseException:
            self._lock.release()
            raise

    def latest_run(self) -> str | None:
        rows = self.con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()
        return rows[0][0] if rows else None

    def has_run(self, run_id: str) -> bool:
        return self.con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0] > 0

    def records(self, run_id: str, ids: set[str]) -> list[Record]:
        """The stored records of a run with the given ids (to copy them into another output)."""
        rows = [r for r in read_db_predictions(self.path, run_id=run_id, con=self.con) if r["id"] in ids]
        return [Record(**{k: v for k, v in r.items() if k in COLUMNS}) for r in rows]

    def done_ids(self, run_id: str) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT id FROM predictions WHERE run_id = ?", [run_id]).fetchall()}

    def error_ids(self, run_id: str) -> set[str]:
        """Ids of the run whose record is an error (predicted again on --resume)."""
        return {r[0] for r in self.con.execute("SELECT id FROM predictions WHERE run_id = ? AND error IS NOT NULL",
                                               [run_id]).fetchall()}

    def drop(self, run_id: str, ids: set[str]) -> None:
        """Delete the run's records with these ids (in one transaction), so that they can be written again."""
        if not ids:
            return
        import pyarrow as pa

        self.con.register("_dropped", pa.table({"id": pa.array(sorted(ids), type=pa.string())}))
        try:
            self.con.execute("DELETE FROM predictions WHERE run_id = ? AND id IN (SELECT id FROM _dropped)", [run_id])
        finally:
            self.con.unregister("_dropped")

    def start_run(self, run_id: str, info: dict[str, Any]) -> None:
        """Insert the run row, or mark an existing run (being resumed) as running again."""
        info = make_encodable(info)[0]  # a file name that is not UTF-8 in the command, for instance
        if info.get("command"):
            info["command"] = mask(info["command"])  # --base-url http://user:password@host is stored without them
        if self.has_run(run_id):
            self.con.execute("UPDATE runs SET status = 'running', sessions = sessions + 1, finished_at = NULL "
                             "WHERE run_id = ?", [run_id])
            return
        self.con.execute(
            """INSERT INTO runs (run_id, started_at, status, engine, model, uses_llm, options, parameters,
                                 prompt_template, prompt_template_hash, kb_release, kb_path, icdreason_version,
                                 command, out_path)
               VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [run_id, datetime.now(timezone.utc), info.get("engine"), info.get("model"), bool(info.get("uses_llm")),
             json.dumps(info.get("options") or {}), json.dumps(info.get("parameters") or {}),
             info.get("prompt_template"), info.get("prompt_template_hash"), info.get("kb_release"),
             info.get("kb_path"), info.get("icdreason_version"), info.get("command"), info.get("out_path")],
        )

    def write_batch(self, records: list[Record]) -> None:
        """Insert a batch in one transaction (ids the run already has are left as they are)."""
        if not records:
            return
        import dataclasses

        import pyarrow as pa

        now = datetime.now(timezone.utc)
        columns: dict[str, list] = {name: [] for name in FIELDS}
        first: dict[str, Record] = {}
        for r in make_records_encodable(records):  # an id twice in one batch: the first one is kept
            first.setdefault(r.id, r)
        unique = list(first.values())
        for r in unique:
            d = dataclasses.asdict(r)
            for name in FIELDS:
                value = d[name]
                columns[name].append(json.dumps(value, ensure_ascii=False) if COLUMNS[name].is_json
                                     and value is not None else value)
        batch = pa.table({**{k: pa.array(v, type=_incoming_type(k)) for k, v in columns.items()},
                          "written_at": pa.array([now] * len(unique), type=pa.timestamp("us", tz="UTC")),
                          "_position": pa.array(range(len(unique)), type=pa.int64())})
        names = ", ".join([*FIELDS, "written_at"])
        self.con.register("_incoming", batch)
        self.con.execute("BEGIN")
        try:
            with interruptible():  # Ctrl-C during the insert: the batch is rolled back and the run is interrupted
                # Not INSERT OR IGNORE: DuckDB does not keep the batch's order through it; readers rely on that order.
                self.con.execute(f"INSERT INTO predictions ({names}) SELECT {names} FROM _incoming AS i WHERE NOT "
                                 "EXISTS (SELECT 1 FROM predictions AS p WHERE p.run_id = i.run_id AND p.id = i.id) "
                                 "ORDER BY i._position")
                self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("_incoming")

    def finish_run(self, run_id: str, *, status: str, seconds: float, engine_seconds: float) -> None:
        """Set the run's status, add this session's timings, and count its notes and tokens from what the log holds
        (sessions killed before they could finish are counted too; replaced error records once)."""
        self.con.execute(
            """UPDATE runs SET status = ?, finished_at = ?, seconds = seconds + ?, engine_seconds = engine_seconds + ?,
                   notes = held.notes, tokens_in = held.tokens_in, tokens_out = held.tokens_out
               FROM (SELECT count(*) AS notes, coalesce(sum(tokens_in), 0) AS tokens_in,
                            coalesce(sum(tokens_out), 0) AS tokens_out
                     FROM predictions WHERE run_id = ?) AS held
               WHERE run_id = ?""",
            [status, datetime.now(timezone.utc), seconds, engine_seconds, run_id, run_id],
        )

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self._lock.release()


def _incoming_type(name: str):
    """The Arrow type of a column in an inserted batch: JSON columns travel as text."""
    import pyarrow as pa

    column = COLUMNS[name]
    return pa.string() if column.is_json else column.arrow_type()


def read_db_predictions(path: str | os.PathLike[str], *, run_id: str | None = None,
                        con=None) -> list[dict[str, Any]]:
    """Rows of the ``predictions`` table (one run or all), JSON columns decoded, in insertion order.

    Any DuckDB file with a ``predictions`` table is read as it is (read-only, no migrations applied).
    """
    p = Path(path)
    own = con is None
    con = con or connect(p, STORE, read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "predictions" not in tables:
            raise InputError(f"{p} has no predictions table: is it a --db file written by `icdreason predict`?")
        sql = "SELECT * EXCLUDE (written_at) FROM predictions"
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        out = []
        for batch in duckdb_rows(con, sql + " ORDER BY written_at, rowid", params):
            for row in batch:
                for optional in ("note", "raw"):
                    if row.get(optional) is None:
                        row.pop(optional, None)
                out.append(upgrade_row(row))
        return out
    finally:
        if own:
            con.close()
