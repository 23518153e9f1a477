"""The DuckDB prediction log (``--db FILE``): a ``runs`` table and a ``predictions`` table keyed by run id.

The schema comes from ordered, named migrations recorded in ``_migrations`` (applied on every open). Each batch is
inserted in one transaction, so a killed process leaves whole batches only; ``--resume`` skips the ids the run
already has.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InputError, UsageError
from .records import FIELDS, JSON_FIELDS, Record

__all__ = ["PredictionDB", "read_db_predictions", "MIGRATIONS"]

_SQL_TYPES = {
    "uses_llm": "BOOLEAN", "format_ok": "BOOLEAN", "chapter": "INTEGER", "tokens_in": "BIGINT",
    "tokens_out": "BIGINT", "seconds": "DOUBLE",
}


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
    cols = ",\n".join(
        f"{name} {'JSON' if name in JSON_FIELDS else _SQL_TYPES.get(name, 'VARCHAR')}" for name in FIELDS
    )
    con.execute(f"CREATE TABLE predictions ({cols}, written_at TIMESTAMP, PRIMARY KEY (run_id, id))")


def _arrow_type(name: str):
    import pyarrow as pa

    types = {"uses_llm": pa.bool_(), "format_ok": pa.bool_(), "chapter": pa.int32(), "tokens_in": pa.int64(),
             "tokens_out": pa.int64(), "seconds": pa.float64()}
    return types.get(name, pa.string())


MIGRATIONS: list[tuple[str, Callable]] = [("0001_runs", _m0001_runs), ("0002_predictions", _m0002_predictions)]


def _migrate(con) -> None:
    from .migrations import migrate

    migrate(con, MIGRATIONS)


def _connect(path: Path, read_only: bool = False):
    import duckdb

    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if "lock" in first.lower():
            raise UsageError(f"{path} is in use by another process ({first}): wait for it or use another --db"
                             ) from None
        raise InputError(f"{path} is not a DuckDB file this tool can open ({first}): choose another --db") from None


class PredictionDB:
    """An open prediction log. ``start_run``, ``write_batch``, ``finish_run``; ``done_ids`` for --resume."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = _connect(self.path)
        _migrate(self.con)

    def latest_run(self) -> str | None:
        rows = self.con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()
        return rows[0][0] if rows else None

    def has_run(self, run_id: str) -> bool:
        return self.con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0] > 0

    def records(self, run_id: str, ids: set[str]) -> list[Record]:
        """The stored records of a run with the given ids (to copy them into another output)."""
        rows = [r for r in read_db_predictions(self.path, run_id=run_id, con=self.con) if r["id"] in ids]
        return [Record(**r) for r in rows]

    def done_ids(self, run_id: str) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT id FROM predictions WHERE run_id = ?", [run_id]).fetchall()}

    def start_run(self, run_id: str, info: dict[str, Any]) -> None:
        """Insert the run row, or mark an existing run (being resumed) as running again."""
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
        import pyarrow as pa

        now = datetime.now(timezone.utc)
        columns: dict[str, list] = {name: [] for name in FIELDS}
        for r in records:
            d = dataclasses_row(r)
            for name in FIELDS:
                value = d[name]
                columns[name].append(json.dumps(value, ensure_ascii=False) if name in JSON_FIELDS
                                     and value is not None else value)
        batch = pa.table({**{k: pa.array(v, type=_arrow_type(k)) for k, v in columns.items()},
                          "written_at": pa.array([now] * len(records), type=pa.timestamp("us", tz="UTC"))})
        self.con.register("_incoming", batch)
        self.con.execute("BEGIN")
        try:
            self.con.execute("INSERT OR IGNORE INTO predictions SELECT * FROM _incoming")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("_incoming")

    def finish_run(self, run_id: str, *, status: str, notes: int, seconds: float, engine_seconds: float,
                   tokens_in: int, tokens_out: int) -> None:
        """Add this session's counts and timings to the run row and set its status."""
        self.con.execute(
            """UPDATE runs SET status = ?, finished_at = ?, notes = notes + ?, seconds = seconds + ?,
                   engine_seconds = engine_seconds + ?, tokens_in = tokens_in + ?, tokens_out = tokens_out + ?
               WHERE run_id = ?""",
            [status, datetime.now(timezone.utc), notes, seconds, engine_seconds, tokens_in, tokens_out, run_id],
        )

    def close(self) -> None:
        self.con.close()


def dataclasses_row(record: Record) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(record)


def read_db_predictions(path: Path, *, run_id: str | None = None, con=None) -> list[dict[str, Any]]:
    """Rows of the ``predictions`` table (one run or all), JSON columns decoded, in insertion order."""
    own = con is None
    con = con or _connect(path, read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "predictions" not in tables:
            raise InputError(f"{path} has no predictions table: is it a --db file written by `icdreason predict`?")
        sql = "SELECT * EXCLUDE (written_at) FROM predictions"
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        cur = con.execute(sql + " ORDER BY written_at, rowid", params)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            d = dict(zip(names, row))
            for key in JSON_FIELDS & d.keys():
                if isinstance(d[key], str):
                    d[key] = json.loads(d[key])
            for optional in ("note", "raw"):
                if d.get(optional) is None:
                    d.pop(optional, None)
            out.append(d)
        return out
    finally:
        if own:
            con.close()
