"""Parse the CMS "ICD-10-CM Official Guidelines for Coding and Reporting" PDF into its section tree.

The document's heading scheme (every fiscal year since 2016)::

    Section I. Conventions, general coding guidelines and chapter specific guidelines      level 0, id I
    A. Conventions for the ICD-10-CM                                                       level 1, id I.A
    1. The Alphabetic Index and Tabular List                                               level 2, id I.A.1
    C. Chapter-Specific Coding Guidelines                                                  level 1, id I.C
    9. Chapter 9: Diseases of the Circulatory System (I00-I99)                             level 2, id I.C.9
    a. Hypertension                                                                        level 3, id I.C.9.a
    1) Hypertension with Heart Disease   /   (a) …                                         kept in the text of I.C.9.a
    Section II. Selection of Principal Diagnosis  …  Section III. …  Section IV. …  Appendix I …

A heading is recognised only when its letter or number is the next one expected at its level (``b.`` after
``a.``, ``3.`` after ``2.``), which keeps numbered lists inside the text from being taken as headings. The table of
contents (lines with dot leaders), running headers ("ICD-10-CM Official Guidelines for Coding and Reporting FY 2025")
and page footers ("Page 7 of 120") are dropped.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DependencyError, InputError

_SECTION = re.compile(r"^Section\s+(IV|III|II|I)\.?\s+(.+)$")
_APPENDIX = re.compile(r"^Appendix\s+(I{1,3}|IV)\.?\s+(.+)$")
_UPPER = re.compile(r"^([A-Z])\.\s+(\S.*)$")
_NUMBER = re.compile(r"^(\d{1,2})\.\s+(\S.*)$")
_LOWER = re.compile(r"^([a-z])\.\s+(\S.*)$")
_CHAPTER = re.compile(r"^Chapter\s+(\d{1,2})\s*:", re.IGNORECASE)
_TOC_LINE = re.compile(r"(\.\s*){4,}\s*\d+\s*$|\s\.{2,}\s*\d+\s*$")
_RUNNING = re.compile(
    r"^(ICD-10-CM Official Guidelines for Coding and Reporting.*|Page\s+\d+\s+of\s+\d+|\d{1,3})\s*$", re.IGNORECASE
)
MAX_TITLE = 220


@dataclass
class Section:
    """One node of the guidelines tree."""

    id: str
    title: str
    level: int
    section: str
    chapter: int | None
    parent: str | None
    page_start: int | None
    page_end: int | None
    lines: list[str] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()

    @property
    def heading(self) -> str:
        """The heading as printed, e.g. ``a. Hypertension`` or ``Section II. Selection of Principal Diagnosis``."""
        mark = self.id.rsplit(".", 1)[-1]
        if self.level == 0:
            return f"{'Section ' + self.id if not self.id.startswith('Appendix') else self.id}. {self.title}"
        return f"{mark}. {self.title}"


def _next_letter(mark: str | None, first: str) -> str:
    return first if mark is None else chr(ord(mark) + 1)


def _next_number(mark: str | None) -> str:
    return "1" if mark is None else str(int(mark) + 1)


class _TreeBuilder:
    """Feeds lines one by one and grows the tree, deciding which lines are headings."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.path: list[Section] = []           # open nodes, level 0..3
        self.last_child: dict[str, str] = {}    # node id -> mark of its last child

    def _open(self, level: int, mark: str, title: str, page: int, section: str) -> Section:
        self.path = self.path[:level]
        parent = self.path[-1] if self.path else None
        chapter = parent.chapter if parent else None
        node_id = mark if level == 0 else f"{parent.id}.{mark}"
        if level == 2 and parent is not None and parent.id == "I.C":
            found = _CHAPTER.match(title)
            chapter = int(found.group(1)) if found else None
        node = Section(node_id, title.strip(), level, section, chapter, parent.id if parent else None, page, page)
        if parent is not None:
            self.last_child[parent.id] = mark
        self.sections.append(node)
        self.path.append(node)
        return node

    def feed(self, line: str, page: int) -> None:
        if self._heading(line, page):
            return
        if self.path:
            node = self.path[-1]
            node.lines.append(line)
            node.page_end = page

    def _heading(self, line: str, page: int) -> bool:
        if len(line) > MAX_TITLE:
            return False
        for pattern in (_SECTION, _APPENDIX):
            found = pattern.match(line)
            if found:
                mark = found.group(1) if pattern is _SECTION else f"Appendix {found.group(1)}"
                if any(s.id == mark for s in self.sections):
                    return False
                self._open(0, mark, found.group(2), page, mark)
                return True
        if not self.path:
            return False
        depth = len(self.path)  # the level a new child would get
        candidates = []  # (level, pattern, expected mark) from the deepest level up
        for level in range(min(depth, 3), 0, -1):
            parent = self.path[level - 1]
            last = self.last_child.get(parent.id)
            if level == 1:
                candidates.append((1, _UPPER, _next_letter(last, "A")))
            elif level == 2:
                candidates.append((2, _NUMBER, _next_number(last)))
            else:
                candidates.append((3, _LOWER, _next_letter(last, "a")))
        for level, pattern, expected in candidates:
            found = pattern.match(line)
            if found and found.group(1) == expected:
                self._open(level, expected, found.group(2), page, self.path[0].section)
                return True
        return False


def _clean_lines(pages: list[str]) -> list[tuple[int, str]]:
    """(page number, line) pairs without running headers, footers and table-of-contents lines."""
    out = []
    for number, text in enumerate(pages, start=1):
        for raw in text.splitlines():
            line = " ".join(raw.split())
            if not line or _RUNNING.match(line) or _TOC_LINE.search(line):
                continue
            out.append((number, line))
    return out


def _join_wrapped_chapter_titles(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """A chapter heading whose code range wrapped onto the next line is joined back into one line."""
    joined: list[tuple[int, str]] = []
    skip = False
    for i, (page, line) in enumerate(lines):
        if skip:
            skip = False
            continue
        found = _NUMBER.match(line)
        if found and _CHAPTER.match(found.group(2)) and "(" not in line and i + 1 < len(lines):
            nxt = lines[i + 1][1]
            if nxt.startswith("(") or re.search(r"\([A-Z]\d", nxt):
                joined.append((page, f"{line} {nxt}"))
                skip = True
                continue
        joined.append((page, line))
    return joined


def parse_pages(pages: list[str]) -> list[Section]:
    """The section tree from the text of each page (page 1 first)."""
    builder = _TreeBuilder()
    for page, line in _join_wrapped_chapter_titles(_clean_lines(pages)):
        builder.feed(line, page)
    # a node's page range covers its subsections
    by_id = {s.id: s for s in builder.sections}
    for node in reversed(builder.sections):
        if node.parent and node.parent in by_id and node.page_end is not None:
            parent = by_id[node.parent]
            parent.page_end = max(parent.page_end or node.page_end, node.page_end)
    return builder.sections


def pdf_pages(source: Path | bytes) -> list[str]:
    """The text of every page of a PDF file (or PDF bytes), extracted with pypdf."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:  # pragma: no cover - pypdf is a core dependency
        raise DependencyError("reading the guidelines PDF needs pypdf: pip install pypdf") from None
    try:
        reader = PdfReader(io.BytesIO(source) if isinstance(source, bytes) else str(source))
        return [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, OSError, ValueError) as exc:
        name = "the downloaded file" if isinstance(source, bytes) else str(source)
        raise InputError(f"{name} is not a readable PDF ({exc}): pass the CMS guidelines PDF") from None


def parse_pdf(source: Path | bytes) -> list[Section]:
    """Parse the guidelines PDF into its section tree; raises InputError when it holds no guideline sections."""
    sections = parse_pages(pdf_pages(source))
    if not any(s.level == 0 for s in sections):
        raise InputError(
            "no 'Section I.' heading found: this PDF does not look like the ICD-10-CM Official Guidelines for Coding "
            "and Reporting (https://www.cms.gov/medicare/coding-billing/icd-10-codes)"
        )
    return sections
