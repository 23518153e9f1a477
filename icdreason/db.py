"""Opening icdreason's DuckDB files: the knowledge base, the prediction log (``--db``) and the audit store.

One function, :func:`open_db`, does what each store needs when it opens its file: connect (waiting for another
process's lock when asked to), turn DuckDB's errors into one-line messages that name the fix, check that the file is
the kind of store expected (by the first migration it recorded, so a prediction log is never taken for a knowledge
base), run the store's own check (:attr:`Store.check`: the knowledge base's schema version), and apply the
migrations the file lacks. :func:`connect` is the first step alone (the audit store opens a short-lived connection per
decision); :func:`explain` turns a DuckDB error raised later into the same one-line messages; :func:`identify` says
what a file is (which store, or why it is none), so that advice such as "rebuild it" is only given for a file of the
store's own kind; :func:`interruptible` turns DuckDB's report of Ctrl-C back into ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import migrations
from .errors import IcdreasonError

if TYPE_CHECKING:
    import duckdb

__all__ = ["Store", "connect", "explain", "explain_later", "identify", "interruptible", "is_interrupt", "open_db",
           "STORE_MARKERS"]

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
    fix: str  # what to do when a file of this kind cannot be used (old schema, damaged), e.g. "choose another --db"
    lock_fix: str = "wait for it to finish"  # what to do when another process holds the lock
    #: What to do when the file is not of this kind (another store, someone else's file, a folder); default: ``fix``.
    foreign_fix: str | None = None
    #: What to do when the file cannot be opened at all (damaged, or not a DuckDB file); default: ``foreign_fix``.
    unreadable_fix: str | None = None
    #: The store's own test of a file of its kind, run before migrations (e.g. the knowledge base's schema version);
    #: it raises ``error`` when the file cannot be used.
    check: Callable[[duckdb.DuckDBPyConnection, Path], None] | None = None

    @property
    def marker(self) -> str:
        """The name of the store's first migration."""
        return self.resolved_migrations()[0][0]

    def resolved_migrations(self) -> Sequence[migrations.Migration]:
        return self.migrations() if callable(self.migrations) else self.migrations

    def advice(self, kind: str | None) -> str:
        """What to do about a file that :func:`identify` calls ``kind`` (None: not known)."""
        if kind in (self.name, EMPTY_FILE, EMPTY_DUCKDB):  # nothing in it to lose
            return self.fix
        if kind in (DAMAGED, NOT_DUCKDB, None):
            return self.unreadable_fix or self.foreign_fix or self.fix
        return self.foreign_fix or self.fix


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
    if opening:
        kind = _kind_from_header(Path(path))
        if kind is not None:
            return store.error(f"{path} is {_a(kind)}, not {_a(store.name)}: {store.advice(kind)}")
    if "read-only" in low or "read only" in low or "permission" in low:
        return store.error(f"{store.name} {path} cannot be written ({_first_line(text)}): make it writable "
                           f"or {store.fix}")
    if opening:
        return store.error(f"{path} is not a DuckDB file this tool can open ({_first_line(text)}): "
                           f"{store.advice(DAMAGED)}")
    if _is_damage(low):
        return store.error(f"{store.name} {path} is damaged or truncated ({_first_line(text)}): {store.fix}")
    return store.error(f"{store.name} {path} cannot be used ({_first_line(text)}): {store.fix}")


def connect(path: str | os.PathLike[str], store: Store, *, read_only: bool = False,
            lock_wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Connect to ``path``, waiting up to ``lock_wait`` seconds for another process's lock; errors become
    ``store.error`` with a one-line message."""
    import duckdb

    p = Path(path)
    if p.is_dir():
        raise store.error(f"{p} is a folder, not {_a(store.name)} file: {store.advice(FOLDER)}")
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
            raise store.error(f"{path} is a DuckDB file but not an icdreason {store.name}: "
                              f"{store.advice(FOREIGN_DUCKDB)}")
        return names
    if store.marker not in names:
        other = next((STORE_MARKERS[n] for n in names if n in STORE_MARKERS), None)
        what = f"an icdreason {other}" if other else "a database of another kind"
        raise store.error(f"{path} is {what}, not {_a(store.name)}: {store.advice(other or FOREIGN_DUCKDB)}")
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


#: What :func:`identify` calls a file that is no icdreason store.
FOLDER, EMPTY_FILE, EMPTY_DUCKDB, FOREIGN_DUCKDB = "folder", "empty file", "empty DuckDB file", "DuckDB file"
DAMAGED, NOT_DUCKDB, LOCKED = "damaged DuckDB file", "file that is not a DuckDB database", "locked DuckDB file"
_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def identify(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is: the icdreason store that made it ("knowledge base", "prediction log", "audit database"),
    else "empty file", "empty DuckDB file", "DuckDB file" (someone else's), "locked DuckDB file", "damaged DuckDB
    file" (DuckDB's header, but it cannot be opened), "file that is not a DuckDB database" or "folder"; None when
    nothing is there."""
    import duckdb

    p = Path(path).expanduser()
    if not p.exists():
        return None
    if p.is_dir():
        return FOLDER
    kind = _kind_from_header(p)
    if kind is not None:
        return kind
    try:
        con = duckdb.connect(str(p), read_only=True)
    except duckdb.Error as exc:
        return LOCKED if _is_lock_error(str(exc)) else DAMAGED
    try:
        names = migrations.applied(con)
        tables = con.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0]
    except duckdb.Error:
        return DAMAGED
    finally:
        con.close()
    found = next((STORE_MARKERS[n] for n in names if n in STORE_MARKERS), None)
    return found or (FOREIGN_DUCKDB if tables else EMPTY_DUCKDB)


def _kind_from_header(p: Path) -> str | None:
    """EMPTY_FILE or NOT_DUCKDB from the first bytes of ``p``; None when they look like a DuckDB database (or the
    file cannot be read, which opening it will report)."""
    try:
        with p.open("rb") as fh:
            header = fh.read(16)
    except OSError:
        return None
    if not header:
        return EMPTY_FILE
    return None if header[8:12] == _DUCKDB_MAGIC else NOT_DUCKDB


_DAMAGE = ("could not read enough bytes", "corrupt", "checksum", "invalid block", "not a valid duckdb")


def _is_damage(low: str) -> bool:
    return any(marker in low for marker in _DAMAGE)


_FILE_IN_MESSAGE = re.compile(r'file "([^"]+)"')


def explain_later(exc: BaseException, stores: Sequence[Store] = ()) -> IcdreasonError | None:
    """A one-line error for a DuckDB error raised by a query after the file was opened (a damaged or truncated file
    found by a later read, a full disk), naming the file when DuckDB's message does; None when ``exc`` is not a
    DuckDB error. The advice is that of the store (of ``stores``) the file turns out to be."""
    if not type(exc).__module__.lstrip("_").startswith("duckdb"):
        return None
    text = str(exc)
    found = _FILE_IN_MESSAGE.search(text)
    if found is None:
        return IcdreasonError(f"database error ({_first_line(text)})")
    path = found.group(1)
    kind = identify(path)
    store = next((s for s in stores if s.name == kind), None)
    if store is not None:
        return explain(path, store, exc)
    if _is_damage(text.lower()):
        return IcdreasonError(f"{path} is damaged or truncated ({_first_line(text)}): restore it from a copy")
    return IcdreasonError(f"{path} cannot be used ({_first_line(text)})")


def is_interrupt(exc: BaseException) -> bool:
    """True for DuckDB's report of a Ctrl-C that arrived during a query (``RuntimeError: Query interrupted``)."""
    import duckdb

    if isinstance(exc, duckdb.InterruptException):
        return True
    return isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted")


@contextmanager
def interruptible() -> Iterator[None]:
    """Around DuckDB queries: a Ctrl-C that DuckDB turned into ``RuntimeError("Query interrupted")`` is raised as the
    ``KeyboardInterrupt`` it was, so the caller's (and the CLI's) Ctrl-C handling runs."""
    try:
        yield
    except Exception as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        raise
