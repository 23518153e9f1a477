"""Open the knowledge base and answer questions about codes: lookup, hierarchy, notes, validation, search.

:class:`KnowledgeBase` is the only code that runs SQL on the knowledge-base file (with the modules of this package):
other packages call its methods. Reads it keeps in memory are dropped when a write through it changes their tables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import duckdb

from .. import config, migrations
from ..codes import normalize, normalize_with_notes
from ..db import Store, open_db
from ..errors import KnowledgeBaseError
from . import schema
from .alpha.tables import IndexTables
from .build import build_kb
from .scraped import ScrapedTables

if TYPE_CHECKING:
    from .instructions import Instructions
    from .search import CodeSearch, SearchHit
    from .validation import CodeIndex, Validation

_REBUILD = "run `icdreason kb build --force` to rebuild it"  # only ever advised for a file that is a knowledge base
_OTHER_FILE = "pass --kb the knowledge-base file (or leave --kb out for the default one)"
_UNREADABLE = ("if it is a damaged knowledge base, delete it and run `icdreason kb build`; otherwise pass --kb the "
               "knowledge-base file")


class CodeInfo(NamedTuple):
    """One row of the ``codes`` table."""

    code: str
    code_nodot: str
    description: str
    kind: str
    billable: bool
    placeholder: bool
    parent: str | None
    category: str | None
    block: str | None
    chapter: int
    depth: int


_CODE_FIELDS = "code, code_nodot, description, kind, billable, placeholder, parent, category, block, chapter, depth"


class CodeDocument(NamedTuple):
    """What a search index over billable codes reads about one code (:meth:`KnowledgeBase.billable_documents`)."""

    code: str
    description: str
    parent_description: str     # the description of the category or subcategory above it ('' when none)
    inclusion_terms: str        # its inclusion terms joined by ' ; ' in tabular order
    symptoms: str               # a stored symptom description in the language asked for ('' when none)


class _Rows:
    """The ``codes`` table as Python objects with the three indexes lookups need."""

    def __init__(self, infos: list[CodeInfo]):
        self.by_nodot: dict[str, CodeInfo] = {}
        self.by_code: dict[tuple[str, str], CodeInfo] = {}
        self.children: dict[tuple[str, str], list[CodeInfo]] = {}
        for info in infos:
            self.by_code[(info.code, "chapter" if info.kind == "chapter" else
                          "block" if info.kind == "block" else "code")] = info
            if info.kind not in ("chapter", "block"):
                self.by_nodot[info.code_nodot] = info
        for info in infos:
            parent = self.parent_of(info)
            if parent is not None:
                self.children.setdefault((parent.code, parent.kind), []).append(info)

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> _Rows:
        table = con.cursor().sql(f"SELECT {_CODE_FIELDS} FROM codes").to_arrow_table()
        columns = [column.to_pylist() for column in table.columns]
        return cls(list(map(CodeInfo._make, zip(*columns))))

    def parent_of(self, info: CodeInfo) -> CodeInfo | None:
        """The row one level up: a code, else a block, else a chapter (block ids can equal category codes)."""
        if info.parent is None:
            return None
        if info.kind in ("chapter", "block", "category"):
            return (self.by_code.get((info.parent, "block"))
                    or self.by_code.get((info.parent, "chapter")))
        found = self.by_code.get((info.parent, "code"))
        return found if found is not None else self.by_code.get((info.parent, "block"))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_schema(con: duckdb.DuckDBPyConnection, kb_file: Path) -> None:
    """Refuse a file without the code tables, or with code tables of another layout (:data:`schema.SCHEMA_VERSION`)."""
    if "0001_core_tables" not in migrations.applied(con):
        raise KnowledgeBaseError(f"{kb_file} is not an icdreason knowledge base: {_REBUILD}")
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 0
    if version != schema.SCHEMA_VERSION:
        raise KnowledgeBaseError(
            f"knowledge base {kb_file} has schema version {version}, this icdreason needs {schema.SCHEMA_VERSION}: "
            f"{_REBUILD}"
        )


#: How :func:`~icdreason.db.open_db` opens the knowledge base (the list of migrations is read at open time).
KB_STORE = Store("knowledge base", schema.MIGRATIONS, KnowledgeBaseError, fix=_REBUILD,
                 lock_fix="wait for it to finish", check=_check_schema, foreign_fix=_OTHER_FILE,
                 unreadable_fix=_UNREADABLE)


class KnowledgeBase(IndexTables, ScrapedTables):
    """A view of the ICD-10-CM knowledge base (one DuckDB file), read-only unless opened for writing.

    Use :meth:`open`; it builds the file on first use when it is missing. The object is a context manager.
    """

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection):
        super().__init__(con)
        self.path = path

    # -- opening -------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, build_if_missing: bool = True,
             read_only: bool = True, progress=_stderr) -> KnowledgeBase:
        """Open the knowledge base at ``path`` (``--kb`` / ``ICDREASON_KB`` / the home default).

        A missing file is built from the bundled release (with a progress message) unless ``build_if_missing`` is
        False. A corrupt file, a locked one or one of an older schema raises :class:`KnowledgeBaseError` naming the
        fix; tables added since the file was built are added to it.
        """
        kb_file = config.kb_path(path)
        if not kb_file.exists():
            if not build_if_missing:
                raise KnowledgeBaseError(f"knowledge base not found at {kb_file}: run `icdreason kb build`")
            progress(f"No knowledge base at {kb_file}: building it from the bundled ICD-10-CM release (one time) …")
            build_kb(kb_file, progress=progress)
        return cls(kb_file, open_db(kb_file, KB_STORE, read_only=read_only))

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- facts about the release ---------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, str]:
        """The ``meta`` table: release, source file, build time and id, schema version."""
        return self._cached("meta", ("meta",), lambda: dict(self.con.execute("SELECT key, value FROM meta").fetchall()))

    @property
    def release(self) -> str:
        return self.meta.get("release", "")

    @property
    def build_id(self) -> str:
        """A random id given to each build: caches derived from the file (search indexes) are stamped with it."""
        return self.meta.get("build_id", "")

    def info(self) -> dict:
        """Release, counts per kind and per chapter, path and size."""
        kinds = dict(self.con.execute("SELECT kind, count(*) FROM codes GROUP BY kind").fetchall())
        billable = self.con.execute("SELECT count(*) FROM codes WHERE billable").fetchone()[0]
        chapters = self.con.execute(
            """SELECT ch.number, ch.roman, ch.first_category || '-' || ch.last_category, ch.title,
                      count(c.code) FILTER (WHERE c.billable)
               FROM chapters ch LEFT JOIN codes c ON c.chapter = ch.number
               GROUP BY ALL ORDER BY ch.number"""
        ).fetchall()
        extra: dict = {"index": [asdict(f) for f in self.index_files()]}
        for table in ("symptoms", "guidelines"):
            if table in self.tables():
                extra[table] = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return {
            "path": str(self.path),
            "size_bytes": self.path.stat().st_size,
            "release": self.release,
            "source_file": self.meta.get("source_file", ""),
            "built_at": self.meta.get("built_at", ""),
            "schema_version": self.meta.get("schema_version", ""),
            "index_release": self.meta.get("index_release", ""),
            "migrations": migrations.applied(self.con),
            "kinds": {k: kinds.get(k, 0) for k in ("chapter", "block", "category", "subcategory", "code")},
            "billable": billable,
            "chapters": [
                {"number": n, "roman": r, "range": rng, "title": t, "billable": b} for n, r, rng, t, b in chapters
            ],
            **extra,
        }

    # -- lookups -------------------------------------------------------------------------------------------------
    @property
    def _rows(self) -> _Rows:
        """Every row of ``codes`` in memory, indexed for lookups (loaded once, on first use)."""
        return self._cached("rows", ("codes",), lambda: _Rows.load(self.con))

    def lookup(self, code: str) -> CodeInfo | None:
        """The row for a code (dotted or not, any case), a block id or a chapter number; None when absent."""
        text = code.strip()
        rows = self._rows
        if text.isdigit():
            return rows.by_code.get((text, "chapter"))
        info = rows.by_nodot.get(normalize(text))
        return info if info is not None else rows.by_code.get((text.upper(), "block"))

    def description(self, code: str) -> str | None:
        """The tabular description of a code, or None when the code does not exist."""
        info = self.lookup(code)
        return info.description if info else None

    def ancestors(self, code: str) -> list[CodeInfo]:
        """The hierarchy above a code, from its chapter down to its parent."""
        info = self.lookup(code)
        chain: list[CodeInfo] = []
        while info is not None and info.parent is not None:
            parent = self._rows.parent_of(info)
            if parent is None:
                break
            chain.append(parent)
            info = parent
        return list(reversed(chain))

    def children(self, code: str) -> list[CodeInfo]:
        """Codes one level below a code (or block, or chapter number)."""
        info = self.lookup(code)
        if info is None:
            return []
        return sorted(self._rows.children.get((info.code, info.kind), []), key=lambda c: c.code)

    def billable_descendants(self, code: str, limit: int | None = None) -> list[CodeInfo]:
        """Billable codes below a header code, the most generic ("unspecified", shortest) first."""
        key = normalize(code)
        sql = (
            f"SELECT {_CODE_FIELDS} FROM codes WHERE billable AND starts_with(code_nodot, ?) AND code_nodot <> ? "
            "ORDER BY NOT contains(lower(description), 'unspecified'), length(code_nodot), code_nodot"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [CodeInfo(*r) for r in self.con.execute(sql, [key, key]).fetchall()]

    def count_billable_descendants(self, code: str) -> int:
        key = normalize(code)
        return self.con.execute(
            "SELECT count(*) FROM codes WHERE billable AND starts_with(code_nodot, ?) AND code_nodot <> ?", [key, key]
        ).fetchone()[0]

    def notes(self, code: str) -> dict[str, list[str]]:
        """The tabular notes of a code, by kind (inclusion_term, excludes1, …), in tabular order."""
        info = self.lookup(code)
        if info is None:
            return {}
        out: dict[str, list[str]] = {}
        for kind, text in self.con.execute(
            "SELECT kind, text FROM notes WHERE code = ? ORDER BY kind, seq", [info.code]
        ).fetchall():
            out.setdefault(kind, []).append(text)
        return out

    def notes_by_code(self) -> dict[str, tuple[str, str, dict[str, list[str]]]]:
        """Every category's, subcategory's and code's tabular notes, read into memory once (a few MB; enrichment
        asks per code): undotted code → (dotted code, description, kind → texts in tabular order)."""
        return self._cached("notes_by_code", ("notes", "codes"), self._all_notes)

    def _all_notes(self) -> dict[str, tuple[str, str, dict[str, list[str]]]]:
        out: dict[str, tuple[str, str, dict[str, list[str]]]] = {}
        rows = self.con.execute(
            "SELECT c.code_nodot, c.code, c.description, n.kind, n.text FROM notes n JOIN codes c ON c.code = n.code "
            "AND c.kind IN ('category', 'subcategory', 'code') ORDER BY c.code, n.kind, n.seq").fetchall()
        for nodot, code, description, kind, text in rows:
            out.setdefault(nodot, (code, description, {}))[2].setdefault(kind, []).append(text)
        return out

    def seventh_characters(self, code: str) -> dict[str, str]:
        """The 7th-character definitions that apply to a code (declared on it or inherited from an ancestor)."""
        info = self.lookup(code)
        if info is None:
            return {}
        for node in [info, *reversed(self.ancestors(info.code))]:
            rows = self.con.execute(
                "SELECT character, meaning FROM seventh_characters WHERE code = ? ORDER BY character", [node.code]
            ).fetchall()
            if rows:
                return dict(rows)
        return {}

    def chapters(self) -> list[tuple[int, str, str, str, str]]:
        """(number, roman, first category, last category, title) for each chapter."""
        return self.con.execute(
            "SELECT number, roman, first_category, last_category, title FROM chapters ORDER BY number"
        ).fetchall()

    def billable_codes(self) -> list[str]:
        """Every billable code, dotted, in code order."""
        return [r[0] for r in self.con.execute("SELECT code FROM codes WHERE billable ORDER BY code_nodot").fetchall()]

    def codes_up_to(self, max_chars: int, *, chapter: int | None = None) -> list[str]:
        """Dotted categories, subcategories and codes of at most ``max_chars`` undotted characters (of one chapter
        when given), in code order."""
        where = "chapter = ? AND " if chapter is not None else ""
        return [r[0] for r in self.con.execute(
            f"SELECT code FROM codes WHERE {where} kind IN ('category', 'subcategory', 'code') "
            "AND length(code_nodot) <= ? ORDER BY code_nodot",
            [chapter, max_chars] if chapter is not None else [max_chars],
        ).fetchall()]

    def billable_documents(self, codes_nodot: Sequence[str] | None = None, *,
                           symptom_language: str | None = None) -> list[CodeDocument]:
        """Billable codes (every one, or those of ``codes_nodot``) with their description, their parent's description
        and their inclusion terms, in code order; with ``symptom_language``, also a stored symptom description in that
        language (the first source by name)."""
        import pyarrow as pa

        join_symptoms = symptom_language is not None and "symptoms" in self.tables()
        symptom_sql = """LEFT JOIN (SELECT code, first(text ORDER BY source) AS text FROM symptoms
                                    WHERE language = ? GROUP BY code) s ON s.code = c.code""" if join_symptoms else ""
        only = "AND c.code_nodot IN (SELECT code_nodot FROM wanted_codes)" if codes_nodot is not None else ""
        cursor = self.con.cursor()
        try:
            if codes_nodot is not None:
                cursor.register("wanted_codes", pa.table({"code_nodot": pa.array(list(codes_nodot), pa.string())}))
            rows = cursor.execute(
                f"""SELECT c.code, c.description, coalesce(p.description, ''),
                           coalesce(string_agg(n.text, ' ; ' ORDER BY n.seq), ''),
                           {"coalesce(any_value(s.text), '')" if join_symptoms else "''"}
                    FROM codes c
                    LEFT JOIN codes p ON p.code = c.parent AND p.kind IN ('category', 'subcategory')
                    LEFT JOIN notes n ON n.code = c.code AND n.kind = 'inclusion_term'
                    {symptom_sql}
                    WHERE c.billable {only}
                    GROUP BY c.code, c.code_nodot, c.description, p.description ORDER BY c.code_nodot""",
                [symptom_language] if join_symptoms else [],
            ).fetchall()
        finally:
            cursor.close()
        return list(map(CodeDocument._make, rows))

    # -- validation and search -----------------------------------------------------------------------------------
    @property
    def index(self) -> CodeIndex:
        """The in-memory code index behind fast validation (loaded on first use)."""
        from .validation import CodeIndex

        return self._cached("index", ("codes", "meta"), lambda: CodeIndex.from_db(self.con))

    def validate(self, code: str, *, suggestions: int = 5) -> Validation:
        """Validate one code: status billable / header / unknown / malformed, with description and suggestions."""
        return self.index.validate(code, suggestions=suggestions)

    def validate_many(self, codes: list[str], *, suggestions: int = 5) -> list[Validation]:
        """Validate many codes; suggestions are computed only for codes that are not billable."""
        return self.index.validate_many(codes, suggestions=suggestions)

    def statuses(self, codes: list[str]) -> list[str]:
        """Only the status of each code, vectorised (millions of codes per second)."""
        return self.index.statuses(codes)

    @property
    def instructions(self) -> Instructions:
        """The tabular list's Excludes1, code-first and use-additional items (loaded on first use)."""
        from .instructions import KINDS, Instructions

        return self._cached("instructions", ("notes",), lambda: Instructions(self.con.execute(
            "SELECT code, kind, text FROM notes WHERE kind IN (?, ?, ?) ORDER BY code, kind, seq", list(KINDS)
        ).fetchall()))

    @property
    def _search(self) -> CodeSearch:
        from .search import CodeSearch

        return self._cached("search", ("codes", "notes", "meta"), lambda: CodeSearch.from_db(self.con, self.path))

    def search(self, text: str, k: int = 10) -> list[SearchHit]:
        """Codes for a text, the way a coder looks them up: the Alphabetic Index first (each hit carries its index
        path), then lexical (BM25) search over descriptions and inclusion terms, billable codes ranked first."""
        from .search import search_codes

        return search_codes(self, text, k)

    def lexical_search(self, text: str, k: int = 10) -> list[SearchHit]:
        """BM25 over descriptions and inclusion terms alone (no index); billable codes ranked first."""
        return self._search.search(text, k=k)


def open_kb(path: str | os.PathLike[str] | None = None, **kwargs) -> KnowledgeBase:
    """Shortcut for :meth:`KnowledgeBase.open`."""
    return KnowledgeBase.open(path, **kwargs)


__all__ = ["CodeDocument", "CodeInfo", "KB_STORE", "KnowledgeBase", "open_kb", "normalize_with_notes"]
