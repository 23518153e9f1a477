"""Store guideline sections in the knowledge base, and import/export them as a folder of per-chapter JSON files.

A folder holds ``chapter_N.json`` files (N = the ICD-10-CM chapter, 1 to 22) and, optionally, ``sections.json`` for
Sections I.A, I.B, II, III, IV and the appendix. Each file is either **nested** (the DeepICD-R1 authors' release, and
what :func:`export_json` writes) or **flat** (what earlier icdreason versions wrote); :mod:`.guidelines_json`
describes both. :func:`import_json_dir` reads every file before anything is stored, so a bad file leaves the
knowledge base as it was.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..codes import CHAPTER_RANGES
from ..errors import InputError
from ..kb.scraped import GuidelineRow
from ..kb.store import KnowledgeBase
from .guidelines import Section
from .guidelines_json import nested_files, read_chapter, read_sections, with_paths

_CHAPTER_FILE = re.compile(r"^chapter_([1-9]\d?)\.json$")


def rows_from_sections(sections: Sequence[Section]) -> list[GuidelineRow]:
    """The table rows of parsed sections (the PDF parser's tree), each with the heading path it is exported under."""
    return with_paths([GuidelineRow(s.id, s.parent, s.level, s.section, s.chapter, s.title, s.text, s.page_start,
                                    s.page_end) for s in sections])


def store_sections(kb: KnowledgeBase, sections: Sequence[Section], source: str) -> int:
    """Replace the ``guidelines`` table with parsed ``sections`` in one transaction; returns the number of rows."""
    return store_rows(kb, rows_from_sections(sections), source)


def store_rows(kb: KnowledgeBase, rows: Sequence[GuidelineRow], source: str) -> int:
    """Replace the ``guidelines`` table with ``rows`` (document order) in one transaction; returns the number
    stored."""
    return kb.replace_guidelines(with_paths(rows), source)


def load_sections(kb: KnowledgeBase) -> list[Section]:
    """The stored sections in document order."""
    return [Section(r.id, r.title, r.level, r.section, r.chapter, r.parent, r.page_start, r.page_end,
                    lines=r.text.splitlines() if r.text else []) for r in kb.guidelines()]


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def export_json(rows: Sequence[GuidelineRow], directory: Path) -> list[Path]:
    """Write ``rows`` as nested ``chapter_N.json`` per chapter and ``sections.json`` for the rest; returns the files
    written (chapters in order, ``sections.json`` last). Importing them gives the same rows back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = nested_files(rows)
    order = sorted(files, key=lambda name: (name == "sections.json", len(name), name))
    written = []
    for name in order:
        _write_json(directory / name, files[name])
        written.append(directory / name)
    return written


def _numbers(numbers: Sequence[int]) -> str:
    """``1, 2, 4-7, 9`` for [1, 2, 4, 5, 6, 7, 9]."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    return ", ".join(parts) or "none"


@dataclass(frozen=True)
class GuidelineFiles:
    """What :func:`import_json_dir` read: the rows in document order, and which chapters had a file of which shape."""

    directory: Path
    rows: list[GuidelineRow]
    shapes: dict[int, str] = field(default_factory=dict)  # chapter number -> "nested" | "flat"
    sections_file: bool = False                           # sections.json was there

    @property
    def chapters(self) -> list[int]:
        return sorted(self.shapes)

    @property
    def missing(self) -> list[int]:
        """ICD-10-CM chapters (1 to 22) without a file."""
        return [c.number for c in CHAPTER_RANGES if c.number not in self.shapes]

    def summary(self, stored: int) -> str:
        """One line for the user: rows stored, the chapters found and missing, the shapes read."""
        shapes = sorted(set(self.shapes.values()))
        found = f"chapters {_numbers(self.chapters)} ({len(self.chapters)} files, {' and '.join(shapes)})"
        extra = " and sections.json" if self.sections_file else ""
        return (f"Imported {stored} guideline sections from {self.directory}: {found}{extra}; "
                f"missing chapters: {_numbers(self.missing)}")


def import_json_dir(directory: Path) -> GuidelineFiles:
    """Read ``chapter_N.json`` files (and ``sections.json`` when present), nested or flat, into rows in document
    order: Section I up to I.C, the chapters, then the other sections. Raises a one-line :class:`InputError` naming
    the file (and the JSON path) that does not fit."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory: pass the folder holding chapter_N.json files")
    chapter_files = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _CHAPTER_FILE.match(p.name)))
    if not chapter_files:
        raise InputError(f"no chapter_N.json files in {directory}: export some with "
                         "`icdreason scrape guidelines --pdf FILE --export-json DIR`")
    sections_file = directory / "sections.json"
    other = read_sections(sections_file) if sections_file.exists() else []
    seen = {row.id: sections_file.name for row in other}
    chapters: list[GuidelineRow] = []
    shapes: dict[int, str] = {}
    for number, path in chapter_files:
        rows, shapes[number] = read_chapter(path, number)
        for row in rows:
            if row.id in seen:
                raise InputError(f"{seen[row.id]} and {path.name} both hold section {row.id}: keep each chapter in "
                                 "its own chapter_N.json only")
            seen[row.id] = path.name
        chapters += rows
    head = [r for r in other if r.section == "I"]
    tail = [r for r in other if r.section != "I"]
    return GuidelineFiles(directory, head + chapters + tail, shapes, sections_file.exists())
