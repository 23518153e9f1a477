"""The knowledge base's connection and its in-memory caches, each tied to the tables it was read from.

A value read once and kept (the code rows, the code index, the search index, a chapter's guideline sections) names
the tables it came from; a write through :meth:`TableCache._writing` drops every value read from the tables it
wrote, so that later reads through the same object see the new rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import duckdb

T = TypeVar("T")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TableCache:
    """A DuckDB connection with memoised reads that writes through it keep up to date."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._cache: dict[str, tuple[frozenset[str], object]] = {}

    def _cached(self, key: str, tables: tuple[str, ...], load: Callable[[], T]) -> T:
        """The value kept under ``key``, loaded by ``load()`` on first use; ``tables`` are the tables it reads."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = (frozenset(tables), load())
        return hit[1]  # type: ignore[return-value]

    def _forget(self, *tables: str) -> None:
        """Drop the values read from any of ``tables`` (every value when none is named)."""
        wrote = set(tables)
        for key, (read, _) in list(self._cache.items()):
            if not wrote or read & wrote:
                self._cache.pop(key, None)

    @contextmanager
    def _writing(self, *tables: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction that writes ``tables``: committed when the block ends, rolled back when it raises; either
        way the values read from those tables are dropped."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self._forget(*tables)

    def tables(self) -> frozenset[str]:
        """The names of the tables in the file."""
        return self._cached("tables", ("information_schema",), lambda: frozenset(
            r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ))

    def has_rows(self, table: str) -> bool:
        """True when the file has ``table`` and it holds at least one row (e.g. "is enrichment available")."""
        if not _IDENTIFIER.match(table) or table not in self.tables():
            return False
        return self._cached(f"has_rows:{table}", (table,), lambda: bool(
            self.con.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]
        ))
