"""Build the knowledge-base file from a CMS tabular XML release, atomically (temporary file, then rename)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from ..codes import CHAPTER_RANGES
from ..db import EMPTY_DUCKDB, EMPTY_FILE, FOLDER, identify, interruptible
from .. import migrations
from ..errors import KnowledgeBaseError
from ..files import file_sha256
from . import schema
from .alpha.load import write_index
from .tabular import bundled_release, read_tabular

Progress = Callable[[str], None]



def build_kb(dest: Path, source: Path | None = None, *, force: bool = False, progress: Progress | None = None,
             index: Sequence[Path] = (), shipped_index: bool = True) -> Path:
    """Build the knowledge base at ``dest`` from ``source`` (default: the XML bundled with simple-icd-10-cm).

    The Alphabetic Index comes from the ``index`` files (official CMS/NCHS index XML: the Index to Diseases and
    Injuries, the External Cause index, the Neoplasm and Drug tables, in any order) and, for each kind not given,
    from the files icdreason ships (``knowledge/index/``) unless ``shipped_index`` is False.

    The file is written next to ``dest`` under a temporary name and renamed into place only when complete, so an
    interrupted build never leaves a half-written knowledge base. ``force`` replaces a knowledge base (of any
    schema) or an empty file, never anything else (:func:`check_replaceable`). Returns ``dest``.
    """
    say = progress or (lambda message: None)
    source = Path(source) if source else bundled_release()
    dest = Path(dest)
    if dest.is_dir():
        raise KnowledgeBaseError(f"{dest} is a folder, not a knowledge-base file: pass --kb a file path such as "
                                 f"{dest / 'icd10cm.duckdb'}")
    if dest.exists() and not force:
        raise KnowledgeBaseError(f"knowledge base already exists at {dest}: pass --force to rebuild it")
    if dest.exists():
        check_replaceable(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".building", dir=dest.parent)
    except OSError as exc:
        raise KnowledgeBaseError(
            f"cannot write the knowledge base in {dest.parent} ({exc.strerror}): pass --kb PATH or set ICDREASON_KB "
            "to a writable location"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # DuckDB wants to create the file itself
    started = time.perf_counter()
    try:
        say(f"Reading {source.name} …")
        tab = read_tabular(source)
        say(f"Writing {len(tab.codes['code']):,} codes to {dest} …")
        con = duckdb.connect(str(tmp))
        try:
            migrations.migrate(con, schema.MIGRATIONS)
            _insert(con, "codes", tab.codes)
            _insert(con, "notes", tab.notes)
            _insert(con, "seventh_characters", tab.seventh)
            romans = {c.number: c.roman for c in CHAPTER_RANGES}
            chapters = dict(tab.chapters)
            chapters["roman"] = [romans.get(n, "") for n in chapters["number"]]
            _insert(con, "chapters", chapters)
            loaded = write_index(con, index, shipped=shipped_index, progress=say)
            for f in loaded:
                say(f"Alphabetic index: {f.source} {f.release} ({f.file}): {f.terms:,} terms, {f.codes:,} codes, "
                    f"{f.codes_missing:,} not in the tabular {tab.release}" + (" [reconstruction, lossy]" if f.losses
                                                                             else ""))
            meta = {
                "schema_version": str(schema.SCHEMA_VERSION),
                "release": tab.release,
                "source_file": source.name,
                "source_sha256": file_sha256(source),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_id": hashlib.sha256(f"{source}{time.time_ns()}".encode()).hexdigest()[:16],
                "build_seconds": f"{time.perf_counter() - started:.2f}",
            }
            con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, dest)
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)
        raise
    say(f"Built the ICD-10-CM knowledge base (release {tab.release}) in {time.perf_counter() - started:.1f} s")
    return dest


def check_replaceable(dest: Path) -> None:
    """Raise unless ``dest`` may be replaced by a new knowledge base: a knowledge base (of any schema version), an
    empty file, or an empty DuckDB file. A prediction log, an audit database, anyone else's file, a damaged file
    (which may have been any of those) or a locked one is never built over."""
    kind = identify(dest)
    if kind in ("knowledge base", EMPTY_FILE, EMPTY_DUCKDB, None):
        return
    if kind == FOLDER:
        raise KnowledgeBaseError(f"{dest} is a folder, not a knowledge-base file: pass --kb a file path")
    if kind in ("prediction log", "audit database"):
        kind = f"icdreason {kind}"
    what = ("an " if kind[0] in "aeiou" else "a ") + kind
    raise KnowledgeBaseError(f"{dest} is {what}, not a knowledge base: refusing to build over it; pass --kb another "
                             "path (delete the file first if you really mean to replace it)")


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list]) -> None:
    con.register("incoming", pa.table(columns))
    try:
        names = ", ".join(columns)
        with interruptible():
            con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming")
    finally:
        con.unregister("incoming")
