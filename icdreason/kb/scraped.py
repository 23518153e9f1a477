"""The tables that ``icdreason scrape`` fills: symptom descriptions, the scrape log and the coding guidelines.

:class:`ScrapedTables` is the part of :class:`~icdreason.kb.store.KnowledgeBase` that reads and writes them; every
write is one transaction and drops what the knowledge base had cached from the tables it wrote. A knowledge base
without these tables (an old file) reads as one without rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import NamedTuple

from ..codes import normalize
from .cache import TableCache


class SymptomRow(NamedTuple):
    """One symptom description to store for a code (a row of ``symptoms``)."""

    code: str                   # dotted ICD-10-CM code it is stored for
    source: str                 # gesund | medlineplus | ...
    source_code: str | None     # the source's own key
    mapping: str                # how the page maps to this code: exact | exact_5th | prefix4 | parent
    language: str
    title: str | None
    text: str
    url: str | None
    http_status: int | None
    content_hash: str


class StoredSymptom(NamedTuple):
    """A stored symptom description, as :meth:`ScrapedTables.nearest_symptom` finds it."""

    code_nodot: str             # the code it is stored for (undotted)
    source: str
    language: str
    title: str | None
    text: str
    url: str | None
    mapping: str


class ScrapeLogEntry(NamedTuple):
    """One attempt at one code (a row of ``scrape_log``)."""

    source: str
    code: str                   # the dotted code that was asked for
    url: str | None
    outcome: str                # stored | not_found | skipped | failed
    reason: str | None
    http_status: int | None


class GuidelineRow(NamedTuple):
    """One section of the official coding guidelines (a row of ``guidelines``, without its bookkeeping columns)."""

    id: str                     # I, I.C, I.C.9, I.C.9.a, I.C.10.s1.s2, ...
    parent: str | None
    level: int
    section: str
    chapter: int | None
    title: str
    text: str
    page_start: int | None
    page_end: int | None
    path: tuple[str, ...] | None = None   # the headings from the top of its JSON file down to it, as written there
    items: tuple[str, ...] | None = None  # a list of strings in the file (``text`` holds them as bullet lines)


_GUIDELINE_FIELDS = "id, parent, level, section, chapter, title, text, page_start, page_end, path, items"


def _guideline_row(values: tuple) -> GuidelineRow:
    *head, path, items = values
    return GuidelineRow(*head, tuple(path) if path is not None else None, tuple(items) if items is not None else None)
_SOURCE_NAME = re.compile(r"^[\w.-]+$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class ScrapedTables(TableCache):
    """Reads and writes of ``symptoms``, ``scrape_log`` and ``guidelines``."""

    # -- symptoms and the scrape log -----------------------------------------------------------------------------
    def symptom_codes(self, source: str) -> set[str]:
        """Dotted codes with a stored description from ``source``."""
        if "symptoms" not in self.tables():
            return set()
        return {r[0] for r in self.con.execute("SELECT code FROM symptoms WHERE source = ?", [source]).fetchall()}

    def logged_codes(self, source: str, outcomes: Iterable[str]) -> set[str]:
        """Dotted codes whose last attempt at ``source`` ended in one of ``outcomes`` (the scrape log)."""
        wanted = list(outcomes)
        if not wanted or "scrape_log" not in self.tables():
            return set()
        rows = self.con.execute(
            f"SELECT code FROM scrape_log WHERE source = ? AND outcome IN ({', '.join('?' * len(wanted))})",
            [source, *wanted],
        ).fetchall()
        return {r[0] for r in rows}

    def record_scrape(self, symptoms: Iterable[SymptomRow] = (), log: Iterable[ScrapeLogEntry] = ()) -> None:
        """Store descriptions (replacing a code's earlier one from the same source) and log entries (replacing the
        code's earlier entry) in one transaction."""
        now = _now()
        symptom_rows = [[s.code, normalize(s.code), s.source, s.source_code, s.mapping, s.language, s.title, s.text,
                         s.url, now, s.http_status, s.content_hash] for s in symptoms]
        log_rows = [[e.source, e.code, e.url, e.outcome, e.reason, e.http_status, now] for e in log]
        with self._writing("symptoms", "scrape_log") as con:
            if symptom_rows:
                con.executemany("INSERT OR REPLACE INTO symptoms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                symptom_rows)
            if log_rows:
                con.executemany("INSERT OR REPLACE INTO scrape_log VALUES (?, ?, ?, ?, ?, ?, ?)", log_rows)

    def nearest_symptom(self, codes_nodot: list[str], *, sources: tuple[str, ...] | None = None,
                        preference: tuple[str, ...] = ()) -> StoredSymptom | None:
        """The stored description of the longest of ``codes_nodot`` that has one (a code and its ancestors), from
        ``sources`` only when given; among sources, ``preference`` order first, then by name. None when none."""
        if not codes_nodot or not self.has_rows("symptoms"):
            return None
        rank = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(preference) if _SOURCE_NAME.match(s))
        where = f"AND source IN ({', '.join('?' * len(sources))})" if sources else ""
        row = self.con.execute(
            f"""SELECT code_nodot, source, language, title, text, url, mapping FROM symptoms
                WHERE code_nodot IN ({', '.join('?' * len(codes_nodot))}) {where}
                ORDER BY length(code_nodot) DESC, CASE source {rank or "WHEN '' THEN 0"} ELSE 999 END, source
                LIMIT 1""",
            [*codes_nodot, *(sources or ())],
        ).fetchone()
        return StoredSymptom(*row) if row else None

    def symptoms_stamp(self, language: str) -> str | None:
        """``count:latest fetch time`` of the stored descriptions in ``language`` (changes whenever they do); None
        when the file has no symptoms table."""
        if "symptoms" not in self.tables():
            return None
        count, latest = self.con.execute(
            "SELECT count(*), max(fetched_at)::VARCHAR FROM symptoms WHERE language = ?", [language]
        ).fetchone()
        return f"{count}:{latest}"

    # -- guidelines ----------------------------------------------------------------------------------------------
    def replace_guidelines(self, rows: Iterable[GuidelineRow], source: str) -> int:
        """Replace every stored guideline section with ``rows`` (in document order) in one transaction; returns the
        number of rows stored."""
        import pyarrow as pa

        rows = list(rows)
        table = pa.table({
            "id": [r.id for r in rows], "parent": [r.parent for r in rows], "level": [r.level for r in rows],
            "seq": list(range(1, len(rows) + 1)), "section": [r.section for r in rows],
            "chapter": pa.array([r.chapter for r in rows], pa.int32()), "title": [r.title for r in rows],
            "text": [r.text for r in rows], "page_start": pa.array([r.page_start for r in rows], pa.int32()),
            "page_end": pa.array([r.page_end for r in rows], pa.int32()), "source": [source] * len(rows),
            "imported_at": pa.array([_now()] * len(rows), pa.timestamp("us")),
            "path": pa.array([list(r.path) if r.path is not None else None for r in rows], pa.list_(pa.string())),
            "items": pa.array([list(r.items) if r.items is not None else None for r in rows], pa.list_(pa.string())),
        })
        columns = ", ".join(table.column_names)
        with self._writing("guidelines") as con:
            con.execute("DELETE FROM guidelines")
            if rows:
                con.register("new_guidelines", table)
                try:
                    con.execute(f"INSERT INTO guidelines ({columns}) SELECT {columns} FROM new_guidelines")
                finally:
                    con.unregister("new_guidelines")
        return len(rows)

    def guidelines(self) -> list[GuidelineRow]:
        """Every stored guideline section in document order."""
        if "guidelines" not in self.tables():
            return []
        rows = self.con.execute(f"SELECT {_GUIDELINE_FIELDS} FROM guidelines ORDER BY seq").fetchall()
        return [_guideline_row(row) for row in rows]

    def chapter_guidelines(self, chapter: int) -> list[GuidelineRow]:
        """The guideline sections of one ICD-10-CM chapter (Section I.C.N and below) in document order (cached)."""
        if "guidelines" not in self.tables():
            return []
        return self._cached(f"guidelines:{chapter}", ("guidelines",), lambda: [_guideline_row(row) for row in (
            self.con.execute(f"SELECT {_GUIDELINE_FIELDS} FROM guidelines WHERE chapter = ? ORDER BY seq",
                             [chapter]).fetchall())])
