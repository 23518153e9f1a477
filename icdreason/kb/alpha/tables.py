"""The part of :class:`~icdreason.kb.store.KnowledgeBase` that reads and writes the Alphabetic Index tables.

A knowledge base without an index (built with ``--no-index``, or an older file) answers as one: no files, no
entries, lookups that find nothing, and everything else works as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ...codes import dotted, normalize
from ..cache import TableCache
from .load import INDEX_TABLES, LoadedFile, write_index
from .parse import TERM_COLUMNS
from .words import unaccounted, with_joined, words

if TYPE_CHECKING:
    from .complete import Completer
    from .matcher import AlphabeticIndex


class IndexEntry(NamedTuple):
    """One index entry: where it is and the code it prints."""

    source: str     # index | eindex | neoplasm | drug
    path: str       # 'Pneumonia › aspiration'
    code: str       # as printed ('S72.00-'); for a table row, the cell ('C34.1-')


@dataclass(frozen=True)
class IndexHit:
    """A text looked up in the index: the billable code reached and the path that led there."""

    code: str                   # dotted billable code ('I21.9'), completed from the printed code when needed
    printed: str                # the code the index prints ('L03.11-', 'T40.1X1')
    path: str                   # 'Attack, attacks › heart → see Infarct, infarction › myocardium, myocardial'
    source: str
    score: float                # words of the text the path accounts for (more is more specific)
    default: bool               # the main term's own code (an unspecified mention)
    unmatched: tuple[str, ...]  # words of the text no title on the path accounts for
    manif: str | None = None
    covered: frozenset[str] = frozenset()   # normalised words of the text the path accounts for


class IndexTables(TableCache):
    """Reads and writes of ``index_files``, ``index_terms``, ``index_cells``, ``index_columns``, ``index_xrefs``."""

    def index_files(self) -> list[LoadedFile]:
        """The loaded index files (empty when the knowledge base has no index)."""
        if not self.has_rows("index_files"):
            return []
        rows = self.con.execute(
            "SELECT source, file, release, title, sha256, provenance, losses, terms, codes, codes_missing, "
            "xrefs_unresolved FROM index_files ORDER BY list_position(['index', 'eindex', 'neoplasm', 'drug'], source)"
        ).fetchall()
        return [LoadedFile(*row) for row in rows]

    @property
    def has_alphabetic_index(self) -> bool:
        return self.has_rows("index_terms")

    @property
    def alphabetic_index(self) -> AlphabeticIndex | None:
        """The index in memory, with its lookup (None without an index); loaded on first use."""
        if not self.has_alphabetic_index:
            return None
        return self._cached("alphabetic_index", ("index_terms", "index_xrefs", "index_cells"), self._load_index)

    def _load_index(self) -> AlphabeticIndex:
        from .matcher import AlphabeticIndex

        def columns(sql: str) -> dict[str, list]:
            table = self.con.cursor().sql(sql).to_arrow_table()
            return {name: table.column(name).to_pylist() for name in table.column_names}

        return AlphabeticIndex(columns(f"SELECT {', '.join(TERM_COLUMNS)} FROM index_terms"),
                               columns("SELECT term, kind, target, target_source, col, code FROM index_xrefs"),
                               columns("SELECT term, col, code FROM index_cells"))

    @property
    def index_completer(self) -> Completer:
        """Completes printed index codes to billable codes over the code table (see ``alpha/complete.py``)."""
        from .complete import Completer

        return self._cached("index_completer", ("codes", "meta"), lambda: Completer(self.index))  # type: ignore

    def index_lookup(self, text: str, *, limit: int = 10, sources: Sequence[str] = ("index", "eindex"),
                     shown: str | None = None) -> list[IndexHit]:
        """Look ``text`` up in the index: one hit per billable code reached, the most specific path first.
        ``unmatched`` lists the words of ``shown`` (default: ``text``; e.g. the query before abbreviations were
        spelled out) that the path does not account for."""
        index = self.alphabetic_index
        if index is None or not text.strip():
            return []
        context = words(text)
        completer = self.index_completer
        hits: dict[str, IndexHit] = {}
        for match in index.lookup(text, sources=sources):
            code = completer.complete(match.code, context, match.path_words)
            if code is None:
                continue
            code, path = self.verify_in_tabular(code, with_joined(context), match.path, match.anchor)
            if code in hits:
                continue
            hits[code] = IndexHit(dotted(code), match.code, path, match.source, match.score, match.default,
                                  unaccounted(shown or text, match.covered), match.manif, match.covered)
            if len(hits) >= limit:
                break
        return list(hits.values())

    def verify_in_tabular(self, code: str, context: set[str], path: str = "",
                          anchor: tuple[frozenset[str], ...] = ()) -> tuple[str, str]:
        """Check a code the index gave against the tabular list's Excludes1 notes (the code's and its ancestors').

        An item applies when the ``context`` words have its deciding words (``Instructions.missing``) and the item
        is about the condition the index matched (its words include ``anchor``, the main term's words: "wheezing
        NOS" under asthma is not about an asthma whose note mentions wheezing). The code it names instead is
        completed with the context and the original code's own words (withdrawal stays withdrawal); among several
        codes named, the one whose description the context best supports. Returns the code and the path, extended
        to say why; unchanged when no item applies."""
        ci = self.index  # type: ignore[attr-defined]
        instructions = self.instructions  # type: ignore[attr-defined]
        if instructions.deciding_words(code, "excludes1").isdisjoint(context):
            return code, path
        position = ci.position.get(code)
        own = self.index_completer.description_words(position) if position is not None else frozenset()
        item = instructions.best(code, "excludes1", context, own, anchor=anchor)
        if item is None:
            return code, path
        completer = self.index_completer
        options = []
        for first, last in item.refs:
            target = completer.complete(first + ("-" if first == last else ""), context, own)
            if target is not None and target != code:
                described = words(ci.descriptions[ci.position[target]])
                options.append((-len(set(described) & context), len(options), target))
        if not options:
            return code, path
        return min(options)[2], f"{path} → tabular Excludes1: {item.text}"

    def index_entries_for(self, code: str, *, limit: int = 8) -> list[IndexEntry]:
        """Index entries that print ``code`` or a header above it ('L03.11-' for L03.116), most specific first."""
        if not self.has_alphabetic_index:
            return []
        key = normalize(code)
        prefixes = [key[:n] for n in range(3, len(key) + 1)]
        return [IndexEntry(*row) for row in self.con.execute(
            """SELECT source, path, printed FROM (
                   SELECT t.id, t.level, t.source, t.path, coalesce(c.code, t.code) AS printed
                   FROM index_terms t LEFT JOIN index_cells c ON c.term = t.id
                   WHERE t.code IS NOT NULL OR c.code IS NOT NULL)
               WHERE list_contains(?, upper(replace(rtrim(printed, '-'), '.', '')))
                 AND (printed LIKE '%-' OR upper(replace(printed, '.', '')) = ?)
               ORDER BY length(rtrim(printed, '-')) DESC, level, id LIMIT ?""",
            [prefixes, key, limit]).fetchall()]

    def index_code_problems(self, *, limit: int | None = None) -> list[IndexEntry]:
        """Index entries whose code the tabular release of this knowledge base does not have."""
        if not self.has_alphabetic_index:
            return []
        sql = """SELECT t.source, t.path, p.raw FROM (
                     SELECT id AS term, code AS raw FROM index_terms WHERE code IS NOT NULL
                     UNION ALL SELECT term, code FROM index_cells) p
                 JOIN index_terms t ON t.id = p.term
                 WHERE upper(replace(rtrim(rtrim(p.raw, '-'), '.'), '.', '')) NOT IN (SELECT code_nodot FROM codes)
                 ORDER BY t.id"""
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [IndexEntry(*row) for row in self.con.execute(sql).fetchall()]

    def import_index(self, files: Sequence[str | Path] = (), *, shipped: bool = True,
                     progress: Callable[[str], None] | None = None) -> list[LoadedFile]:
        """Replace the index with ``files`` (each kind not given from the shipped files); one transaction."""
        with self._writing(*INDEX_TABLES, "meta") as con:
            return write_index(con, files, shipped=shipped, progress=progress)
