"""Opening icdreason's DuckDB files: the knowledge base, the prediction log (``--db``) and the audit store.

One function, :func:`open_db`, does what each store needs when it opens its file: connect (waiting for another
process's lock when asked to), turn DuckDB's errors into one-line messages that name the fix, check that the file is
the kind of store expected (by the first migration it recorded, so a prediction log is never taken for a knowledge
base), run the store's own check (:attr:`Store.check`: the knowledge base's schema version), and apply the
migrations the file lacks. :func:`connect` is the first step alone (the audit store opens a short-lived connection per
decision); :func:`explain` turns a DuckDB error raised later into the same one-line messages; :func:`identify` says
which store a file is.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import migrations
from .errors import IcdreasonError

if TYPE_CHECKING:
    import duckdb

__all__ = ["Store", "connect", "explain", "identify", "open_db", "STORE_MARKERS"]

#: The first migration of each store: what a file records identifies the store that made it (names are frozen).
STORE_MARKERS: dict[str, str] = {
    "0001_core_tables": "knowledge base",
    "0001_runs": "prediction log",
    "0001_audit_tables": "audit database",
}


@dataclass(frozen=True)
class Store:
    """What :func:`open_db` needs to know about one kind of file."""

    name: str  # "knowledge base", "prediction log", "audit database"
    migrations: Sequence[migrations.Migration] | Callable[[], Sequence[migrations.Migration]]
    error: type[IcdreasonError]
    fix: str  # what to do when the file cannot be used, e.g. "choose another --db"
    lock_fix: str = "wait for it to finish"  # what to do when another process holds the lock
    #: The store's own test of a file of its kind, run before migrations (e.g. the knowledge base's schema version);
    #: it raises ``error`` when the file cannot be used.
    check: Callable[[duckdb.DuckDBPyConnection, Path], None] | None = None

    @property
    def marker(self) -> str:
        """The name of the store's first migration."""
        return self.resolved_migrations()[0][0]

    def resolved_migrations(self) -> Sequence[migrations.Migration]:
        return self.migrations() if callable(self.migrations) else self.migrations


def _a(name: str) -> str:
    """``name`` with its indefinite article: "an audit database", "a knowledge base"."""
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "unknown error"


def _holder(text: str) -> str:
    """`` (PID 1234)`` when DuckDB's lock message names the process holding the lock."""
    if "PID" not in text:
        return ""
    return " (" + text[text.index("PID"):].split(")")[0].strip() + ")"


_LOCK = re.compile(r"\block\b")  # DuckDB's "Could not set lock on file" ("block" in other errors is no lock)


def _is_lock_error(text: str) -> bool:
    return _LOCK.search(text.lower()) is not None


def explain(path: str | os.PathLike[str], store: Store, exc: BaseException, *, lock_wait: float = 0.0,
            opening: bool = False) -> IcdreasonError:
    """``store.error`` with a one-line message for a DuckDB error on ``path``: locked, not writable, not a DuckDB
    file (when ``opening``), or cannot be used."""
    text = str(exc)
    low = text.lower()
    if _is_lock_error(text):
        waited = f" for more than {lock_wait:g} s" if lock_wait > 0 else ""
        return store.error(f"{store.name} {path} is locked by another process{_holder(text)}{waited}: "
                           f"{store.lock_fix}")
    if "read-only" in low or "read only" in low or "permission" in low:
        return store.error(f"{store.name} {path} cannot be written ({_first_line(text)}): make it writable "
                           f"or {store.fix}")
    if opening:
        return store.error(f"{path} is not a DuckDB file this tool can open ({_first_line(text)}): {store.fix}")
    return store.error(f"{store.name} {path} cannot be used ({_first_line(text)}): {store.fix}")


def connect(path: str | os.PathLike[str], store: Store, *, read_only: bool = False,
            lock_wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Connect to ``path``, waiting up to ``lock_wait`` seconds for another process's lock; errors become
    ``store.error`` with a one-line message."""
    import duckdb

    p = Path(path)
    if p.is_dir():
        raise store.error(f"{p} is a folder, not {_a(store.name)} file: {store.fix}")
    if not p.parent.exists():
        raise store.error(f"folder {p.parent} does not exist: create it or choose another path for the {store.name}")
    deadline = time.monotonic() + lock_wait
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(p), read_only=read_only)
        except duckdb.Error as exc:
            if _is_lock_error(str(exc)) and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            raise explain(p, store, exc, lock_wait=lock_wait, opening=True) from None


def _check_kind(con: duckdb.DuckDBPyConnection, path: Path, store: Store) -> list[str]:
    names = migrations.applied(con)
    if not names:
        if con.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0]:
            raise store.error(f"{path} is a DuckDB file but not an icdreason {store.name}: {store.fix}")
        return names
    if store.marker not in names:
        other = next((STORE_MARKERS[n] for n in names if n in STORE_MARKERS), None)
        what = f"an icdreason {other}" if other else "a database of another kind"
        raise store.error(f"{path} is {what}, not {_a(store.name)}: {store.fix}")
    return names


def open_db(path: str | os.PathLike[str], store: Store, *, read_only: bool = False,
            lock_wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open (or create) a store's file and bring its schema up to date; returns the connection.

    A read-only open of a file that lacks migrations reopens it for writing once to apply them. A file of another
    store, a DuckDB file of someone else's, or not a DuckDB file at all is refused with a one-line message.
    """
    import duckdb

    p = Path(path).expanduser()
    con = connect(p, store, read_only=read_only, lock_wait=lock_wait)
    try:
        _check_kind(con, p, store)
        if store.check is not None:
            store.check(con, p)
        todo = migrations.pending(con, store.resolved_migrations())
        if todo and read_only:
            con.close()
            if not os.access(p, os.W_OK):
                raise store.error(f"{store.name} {p} needs new tables but is read-only: make it writable once, or "
                                  f"{store.fix}")
            writer = connect(p, store, lock_wait=lock_wait)
            try:
                migrations.migrate(writer, store.resolved_migrations())
            finally:
                writer.close()
            con = connect(p, store, read_only=True, lock_wait=lock_wait)
        elif todo:
            migrations.migrate(con, store.resolved_migrations())
    except duckdb.Error as exc:
        con.close()
        raise explain(p, store, exc, lock_wait=lock_wait) from None
    except BaseException:
        con.close()
        raise
    return con


def identify(path: str | os.PathLike[str]) -> str | None:
    """Which icdreason store ``path`` is ("knowledge base", "prediction log", "audit database"), "DuckDB file" for
    another DuckDB file, None when it is missing or not a DuckDB file."""
    import duckdb

    p = Path(path)
    if not p.is_file():
        return None
    try:
        con = duckdb.connect(str(p), read_only=True)
    except duckdb.Error:
        return None
    try:
        names = migrations.applied(con)
    except duckdb.Error:
        return None
    finally:
        con.close()
    return next((STORE_MARKERS[n] for n in names if n in STORE_MARKERS), "DuckDB file")
