"""The audit database: the sampled cases and every reviewer's decisions, one DuckDB file.

Each decision is committed the moment it is made. The store opens a short-lived connection per operation
(:func:`icdreason.db.connect`, retrying while another reviewer's process holds the write lock), so several reviewers
can audit the same file at once; a database that stays locked or is read-only raises :class:`AuditDatabaseError` and
the caller keeps the decision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from ..db import Store, connect, explain, open_db
from ..errors import IcdreasonError
from . import schema

#: Reasons a reviewer can give for rejecting a prediction: stored key -> label shown to the reviewer.
REJECT_REASONS: dict[str, str] = {
    "wrong_chapter": "wrong chapter",
    "not_specific_enough": "not specific enough",
    "not_supported": "not supported by the note",
    "hallucinated_evidence": "hallucinated evidence",
    "missed_severity": "missed severity",
    "premature_closure": "premature closure",
    "other": "other",
}
DECISIONS = ("accept", "correct", "reject", "skip")
#: Decisions that close a case for a reviewer (a skipped case comes back later).
FINAL = ("accept", "correct", "reject")


class AuditDatabaseError(IcdreasonError):
    """The audit database is locked, read-only, not an audit database, or belongs to other predictions."""


def now() -> datetime:
    """The current UTC time, without tzinfo (DuckDB TIMESTAMP)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)



@dataclass
class AuditInfo:
    """What an audit was started on, and how its cases were sampled."""

    predictions_path: str
    predictions_sha256: str
    run_id: str | None
    records: int
    strategy: str
    sample_size: int | None
    seed: int
    kb_release: str | None = None
    icdreason_version: str | None = None
    created_at: datetime | None = None


@dataclass
class Case:
    """One sampled prediction under review."""

    position: int
    case_id: str
    model_code: str | None
    status: str | None
    description: str | None
    chapter: int | None
    category: str | None
    confidence: float | None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    """One reviewer's decision on one case."""

    reviewer: str
    case_id: str
    decision: str
    expert_code: str | None = None
    blind_code: str | None = None
    reason: str | None = None
    comment: str | None = None
    flagged: bool = False
    seconds: float | None = None
    decided_at: datetime | None = None
    source: str = "session"
    predictions_sha256: str = ""
    id: int | None = None


_DECISION_COLUMNS = ("reviewer", "case_id", "decision", "expert_code", "blind_code", "reason", "comment", "flagged",
                     "seconds", "decided_at", "source", "predictions_sha256", "id")


#: How :func:`~icdreason.db.open_db` opens an audit database.
AUDIT_STORE = Store("audit database", schema.MIGRATIONS, AuditDatabaseError, fix="use another --db",
                    lock_fix="close the other session or wait, then retry")


def lock_timeout() -> float:
    """Seconds to wait for another process's write lock (``ICDREASON_AUDIT_LOCK_TIMEOUT``, default 10)."""
    try:
        return float(os.environ.get("ICDREASON_AUDIT_LOCK_TIMEOUT", "10"))
    except ValueError:
        return 10.0


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK)
    parent = path.parent if str(path.parent) else Path(".")
    return parent.exists() and os.access(parent, os.W_OK)


class AuditStore:
    """Cases and decisions of one audit in one DuckDB file. Use :meth:`open`."""

    def __init__(self, path: Path, timeout: float | None = None):
        self.path = path
        self.timeout = lock_timeout() if timeout is None else timeout

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, timeout: float | None = None) -> AuditStore:
        """Open (and with ``create``, create) the audit database, applying pending migrations."""
        store = cls(Path(path).expanduser(), timeout)
        if not store.path.exists() and not create:
            raise AuditDatabaseError(
                f"no audit database at {store.path}: start one with `icdreason audit start PREDICTIONS "
                f"--reviewer NAME --db {store.path}`"
            )
        exists = store.path.exists()
        if not exists:
            store._check_writable()
        open_db(store.path, AUDIT_STORE, read_only=exists, lock_wait=store.timeout).close()
        return store

    # -- connections ---------------------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if not self.path.parent.exists():
            raise AuditDatabaseError(f"folder {self.path.parent} does not exist: create it or choose another --db")
        if not _writable(self.path):
            raise AuditDatabaseError(
                f"audit database {self.path} is read-only: make it writable (chmod u+w) or copy it and use --db COPY"
            )

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits up to ``timeout`` seconds for another process's lock."""
        if not read_only:
            self._check_writable()
        con = connect(self.path, AUDIT_STORE, read_only=read_only, lock_wait=self.timeout)
        try:
            yield con
        except duckdb.Error as exc:
            raise explain(self.path, AUDIT_STORE, exc, lock_wait=self.timeout) from None
        finally:
            con.close()

    # -- the audit and its cases ---------------------------------------------------------------------------------
    def info(self) -> AuditInfo | None:
        """The audit this file holds, or None when no audit was started yet."""
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT predictions_path, predictions_sha256, run_id, records, strategy, sample_size, seed, "
                "kb_release, icdreason_version, created_at FROM audit LIMIT 1"
            ).fetchone()
        return AuditInfo(*row) if row else None

    def create(self, info: AuditInfo, cases: list[Case]) -> None:
        """Record the audit and its sampled cases (one transaction)."""
        with self.connect() as con:
            if con.execute("SELECT count(*) FROM audit").fetchone()[0]:
                raise AuditDatabaseError(f"{self.path} already holds an audit: use another --db")
            con.execute("BEGIN TRANSACTION")
            con.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [info.predictions_path, info.predictions_sha256, info.run_id, info.records, info.strategy,
                 info.sample_size, info.seed, info.kb_release, info.icdreason_version, info.created_at or now()],
            )
            con.executemany(
                "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[c.position, c.case_id, c.model_code, c.status, c.description, c.chapter, c.category, c.confidence,
                  json.dumps(c.record, ensure_ascii=False, default=str)] for c in cases],
            )
            con.execute("COMMIT")

    def cases(self) -> list[Case]:
        """The sampled cases in review order."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT position, case_id, model_code, status, description, chapter, category, confidence, record "
                "FROM cases ORDER BY position"
            ).fetchall()
        return [Case(*row[:8], record=json.loads(row[8])) for row in rows]

    # -- reviewers -----------------------------------------------------------------------------------------------
    def reviewers(self) -> list[str]:
        with self.connect(read_only=True) as con:
            return [r[0] for r in con.execute("SELECT name FROM reviewers ORDER BY name").fetchall()]

    def add_reviewer(self, name: str, added_by: str = "session") -> None:
        with self.connect() as con:
            con.execute("INSERT INTO reviewers VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [name, now(), added_by])

    # -- decisions -----------------------------------------------------------------------------------------------
    def record(self, decisions: Decision | list[Decision]) -> None:
        """Commit decisions in one transaction, in order; fills ``decided_at`` where it is missing."""
        items = [decisions] if isinstance(decisions, Decision) else list(decisions)
        if not items:
            return
        import pyarrow as pa

        for d in items:
            d.decided_at = d.decided_at or now()
        names = ("seq", "reviewer", "case_id", "predictions_sha256", "decision", "expert_code", "blind_code", "reason",
                 "comment", "flagged", "seconds", "decided_at", "source")
        batch = pa.table({name: [i if name == "seq" else getattr(d, name) for i, d in enumerate(items)]
                          for name in names},
                         schema=pa.schema([(n, pa.int64() if n == "seq" else pa.bool_() if n == "flagged" else
                                            pa.float64() if n == "seconds" else pa.timestamp("us")
                                            if n == "decided_at" else pa.string()) for n in names]))
        with self.connect() as con:
            con.register("incoming_decisions", batch)
            con.execute(
                f"INSERT INTO decisions ({', '.join(names[1:])}) "
                f"SELECT {', '.join(names[1:])} FROM incoming_decisions ORDER BY seq"
            )

    def decisions(self, reviewer: str | None = None, *, latest: bool = True) -> list[Decision]:
        """Decisions in the order they were made; with ``latest`` only each reviewer's last one per case."""
        where = "WHERE reviewer = ?" if reviewer is not None else ""
        params = [reviewer] if reviewer is not None else []
        sql = f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions {where}"
        if latest:
            sql += " QUALIFY row_number() OVER (PARTITION BY reviewer, case_id ORDER BY id DESC) = 1"
        sql += " ORDER BY id"
        with self.connect(read_only=True) as con:
            return [Decision(*row) for row in con.execute(sql, params).fetchall()]

    def save_blind_code(self, reviewer: str, case_id: str, code: str, seconds: float | None) -> None:
        """Keep a code entered in blind mode at once (it is the unbiased answer, even if no decision follows)."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO blind_codes VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET code = excluded.code, "
                "seconds = excluded.seconds, entered_at = excluded.entered_at",
                [reviewer, case_id, code, seconds, now()],
            )

    def blind_codes(self, reviewer: str) -> dict[str, tuple[str, float | None]]:
        """case id -> (blind code, seconds) for one reviewer."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT case_id, code, seconds FROM blind_codes WHERE reviewer = ?", [reviewer]
            ).fetchall()
        return {case_id: (code, seconds) for case_id, code, seconds in rows}
