"""Write an Alphabetic Index release into the knowledge base's ``index_*`` tables, checked against its tabular list.

The files a user gives (``kb build --index FILE``, ``kb import-index FILE``) are classified by their content; each
kind not given comes from the files icdreason ships (``knowledge/index/``, see ``manifest.json``). The four files
are loaded together because their cross-references point into each other ("see Neoplasm, malignant, by site").
Every index code and table cell is checked against the knowledge base's ``codes`` table: a code the tabular release
does not have is counted in ``index_files.codes_missing`` (``KnowledgeBase.index_code_problems`` lists them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ...errors import InputError, KnowledgeBaseError
from ...files import file_sha256
from .parse import TERM_COLUMNS, IndexFile, read_index
from .shipped import shipped_files
from .xrefs import resolve_all

Progress = Callable[[str], None]
INDEX_TABLES = ("index_files", "index_terms", "index_cells", "index_columns", "index_xrefs")
_KIND_ORDER = ("index", "eindex", "neoplasm", "drug")


@dataclass(frozen=True)
class LoadedFile:
    """What was loaded from one file (a row of ``index_files``)."""

    source: str
    file: str
    release: str
    title: str
    sha256: str
    provenance: str
    losses: str
    terms: int
    codes: int
    codes_missing: int
    xrefs_unresolved: int



def read_release(given: Sequence[str | Path] = (), *, shipped: bool = True,
                 progress: Progress | None = None) -> list[tuple[IndexFile, Path, str, str, str]]:
    """Parse the given files and, for the kinds they do not cover, the shipped ones: (file, path, sha256,
    provenance, losses) in the order index, eindex, neoplasm, drug."""
    say = progress or (lambda message: None)
    out: dict[str, tuple[IndexFile, Path, str, str, str]] = {}
    next_id = 0
    for raw in given:
        path = Path(raw)
        say(f"Reading the index file {path.name} …")
        parsed = read_index(path, first_id=next_id)
        if parsed.kind in out:
            raise InputError(f"two files of the same kind ({parsed.kind}): {out[parsed.kind][1].name} and {path.name}: "
                             "pass one file of each kind")
        next_id += len(parsed)
        out[parsed.kind] = (parsed, path, file_sha256(path), "", "")
    if shipped:
        for ship in shipped_files():
            if ship.kind in out:
                continue
            digest = file_sha256(ship.path)
            if ship.sha256 and digest != ship.sha256:
                raise KnowledgeBaseError(
                    f"the shipped index file {ship.path} is damaged (sha256 {digest[:12]}…, expected "
                    f"{ship.sha256[:12]}…): reinstall icdreason, or build with --no-index")
            parsed = read_index(ship.path, first_id=next_id)
            next_id += len(parsed)
            out[parsed.kind] = (parsed, ship.path, digest, f"shipped with icdreason: {ship.provenance}", ship.losses)
    return [out[kind] for kind in _KIND_ORDER if kind in out]


def write_index(con: duckdb.DuckDBPyConnection, given: Sequence[str | Path] = (), *, shipped: bool = True,
                progress: Progress | None = None) -> list[LoadedFile]:
    """Replace the index tables on ``con`` with the given files (plus the shipped ones for the other kinds) and
    record each file, its checks and the index release in ``meta``. The caller owns the transaction."""
    release = read_release(given, shipped=shipped, progress=progress)
    for table in INDEX_TABLES:
        con.execute(f"DELETE FROM {table}")
    con.execute("DELETE FROM meta WHERE key IN ('index_release', 'index_file', 'index_provenance')")
    if not release:
        return []
    files = [entry[0] for entry in release]
    xrefs, unresolved = resolve_all(files)
    _insert(con, "index_terms", {k: [v for f in files for v in f.terms[k]] for k in TERM_COLUMNS}, _TERM_TYPES)
    _insert(con, "index_cells", {k: [v for f in files for v in f.cells[k]] for k in ("term", "col", "code")},
            {"term": pa.int32(), "col": pa.int32(), "code": pa.string()})
    _insert(con, "index_xrefs", xrefs, {"term": pa.int32(), "kind": pa.string(), "target": pa.int32(),
                                        "target_source": pa.string(), "col": pa.int32(), "code": pa.string()})
    columns = [(f.kind, col, head) for f in files for col, head in sorted(f.columns.items())]
    if columns:
        con.executemany("INSERT INTO index_columns VALUES (?, ?, ?)", columns)
    checked = dict((source, (codes, missing)) for source, codes, missing in con.execute(_CODE_CHECK).fetchall())
    loaded = []
    for parsed, path, digest, provenance, losses in release:
        codes, missing = checked.get(parsed.kind, (0, 0))
        loaded.append(LoadedFile(parsed.kind, path.name, parsed.release, parsed.title, digest, provenance, losses,
                                 len(parsed), codes, missing, unresolved.get(parsed.kind, 0)))
    con.executemany("INSERT INTO index_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                    [astuple(f) for f in loaded])
    main = next((f for f in loaded if f.source == "index"), loaded[0])
    con.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("index_release", main.release), ("index_file", main.file),
        ("index_provenance", main.provenance or "given by the user"),
    ])
    return loaded


_TERM_TYPES = {"id": pa.int32(), "source": pa.string(), "parent": pa.int32(), "main": pa.int32(),
               "level": pa.int32(), **{k: pa.string() for k in TERM_COLUMNS if k not in
                                       ("id", "source", "parent", "main", "level")}}

#: (source, codes, codes not in the tabular) over index codes and table cells, a trailing '-' or '.' ignored.
_CODE_CHECK = """
    WITH printed AS (
        SELECT source, code AS raw FROM index_terms WHERE code IS NOT NULL
        UNION ALL SELECT t.source, c.code FROM index_cells c JOIN index_terms t ON t.id = c.term
    ), keyed AS (
        SELECT source, upper(replace(rtrim(rtrim(raw, '-'), '.'), '.', '')) AS nodot FROM printed
    )
    SELECT k.source, count(*), count(*) FILTER (WHERE c.code_nodot IS NULL)
    FROM keyed k LEFT JOIN (SELECT DISTINCT code_nodot FROM codes) c ON c.code_nodot = k.nodot
    GROUP BY k.source
"""


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list], types: dict) -> None:
    con.register("incoming_index", pa.table({k: pa.array(v, types[k]) for k, v in columns.items()}))
    try:
        names = ", ".join(columns)
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming_index")
    finally:
        con.unregister("incoming_index")
