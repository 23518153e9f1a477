"""Schemas as ordered, named migrations, recorded in a ``_migrations`` table of the database they built.

The knowledge base (``kb/schema.py``), the prediction log (``records/db.py``) and the audit store
(``audit/schema.py``) each keep their own list of migrations and apply it with these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Migration = tuple[str, Callable[[Any], None]]


def applied(con) -> list[str]:
    """Names of the migrations a database has recorded (empty when it has no ``_migrations`` table)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = '_migrations'"
    ).fetchone()[0]
    if not exists:
        return []
    return [row[0] for row in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]


def pending(con, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations of ``migrations`` this database lacks, in order."""
    done = set(applied(con))
    return [m for m in migrations if m[0] not in done]


def migrate(con, migrations: Sequence[Migration]) -> list[str]:
    """Apply every pending migration, each in its own transaction; returns the names applied."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    names = []
    for name, apply in pending(con, migrations):
        con.execute("BEGIN TRANSACTION")
        try:
            apply(con)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        names.append(name)
    return names
