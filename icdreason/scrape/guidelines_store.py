"""Store guideline sections in the knowledge base, and export/import them as per-chapter JSON files.

The JSON shape is the one the DeepICD-R1 authors released: one file per chapter, ``chapter_N.json``, an object from
heading to text in document order, the chapter's own heading first::

    {"9. Chapter 9: Diseases of the Circulatory System (I00-I99)": "…",
     "a. Hypertension": "The classification presumes a causal relationship …",
     "b. Atherosclerotic Coronary Artery Disease and Angina": "…"}

``--export-json`` also writes ``sections.json`` (the same shape) for Sections I.A, I.B, II, III, IV and the
appendix, so that an export re-imports to the same table.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from ..errors import InputError
from ..kb.scraped import GuidelineRow
from ..kb.store import KnowledgeBase
from .guidelines import _CHAPTER, Section

_CHAPTER_FILE = re.compile(r"^chapter_(\d{1,2})\.json$")
_HEADING = re.compile(r"^(?:Section\s+(?P<section>IV|III|II|I)|(?P<appendix>Appendix\s+[IV]+)|(?P<mark>[A-Za-z]|\d{1,2}))"
                      r"\.\s+(?P<title>.+)$", re.DOTALL)


def store_sections(kb: KnowledgeBase, sections: list[Section], source: str) -> int:
    """Replace the ``guidelines`` table with ``sections`` in one transaction; returns the number of rows."""
    return kb.replace_guidelines(
        [GuidelineRow(s.id, s.parent, s.level, s.section, s.chapter, s.title, s.text, s.page_start, s.page_end)
         for s in sections],
        source,
    )


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


def export_json(sections: list[Section], directory: Path) -> list[Path]:
    """Write ``chapter_N.json`` per chapter and ``sections.json`` for the rest; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chapters: dict[int, dict[str, str]] = {}
    rest: dict[str, str] = {}
    for s in sections:
        target = chapters.setdefault(s.chapter, {}) if s.chapter is not None else rest
        target[s.heading] = s.text
    written = []
    for number in sorted(chapters):
        path = directory / f"chapter_{number}.json"
        _write_json(path, chapters[number])
        written.append(path)
    if rest:
        path = directory / "sections.json"
        _write_json(path, rest)
        written.append(path)
    return written


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc}): pass the folder of chapter_N.json files") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise InputError(f"{path} is not an object of heading -> text strings: expected the chapter_N.json shape")
    return data


def _chapter_sections(number: int, data: dict[str, str]) -> list[Section]:
    """Sections I.C.N (the chapter heading, or the first key) and I.C.N.<mark> for the other headings."""
    out: list[Section] = []
    chapter_id = f"I.C.{number}"
    used: set[str] = set()
    for index, (heading, text) in enumerate(data.items()):
        found = _HEADING.match(heading.strip())
        title = found.group("title").strip() if found else heading.strip()
        mark = found.group("mark") if found else None
        if index == 0 and (mark == str(number) or _CHAPTER.match(title) or not out):
            out.append(Section(chapter_id, title, 2, "I", number, "I.C", None, None, text.splitlines()))
            continue
        sub = mark if mark and mark.isalpha() and mark.islower() and mark not in used else f"s{index}"
        used.add(sub)
        out.append(Section(f"{chapter_id}.{sub}", title, 3, "I", number, chapter_id, None, None, text.splitlines()))
    return out


def _other_sections(data: dict[str, str]) -> list[Section]:
    """Sections outside I.C from ``sections.json``, rebuilding ids from the heading marks in document order."""
    out: list[Section] = []
    path: list[Section] = []
    for heading, text in data.items():
        found = _HEADING.match(heading.strip())
        if not found:
            raise InputError(f"sections.json heading {heading!r} has no section mark: expected e.g. 'A. Title'")
        title = found.group("title").strip()
        if found.group("section") or found.group("appendix"):
            mark = found.group("section") or " ".join(found.group("appendix").split())
            level, parent = 0, None
        else:
            mark = found.group("mark")
            level = 1 if mark.isupper() else 2 if mark.isdigit() else 3
            path = path[:level]
            parent = path[-1] if path else None
            if parent is None:
                raise InputError(f"sections.json heading {heading!r} comes before any 'Section' heading")
        node_id = mark if level == 0 else f"{parent.id}.{mark}"
        section = mark if level == 0 else path[0].section
        chapter = parent.chapter if parent is not None else None
        node = Section(node_id, title, level, section, chapter, parent.id if parent else None, None, None,
                       text.splitlines())
        path = path[:level] + [node]
        out.append(node)
    return out


def import_json_dir(directory: Path) -> list[Section]:
    """Read ``chapter_N.json`` files (and ``sections.json`` when present) into sections in document order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory: pass the folder holding chapter_N.json files")
    chapter_files = sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if (m := _CHAPTER_FILE.match(p.name))
    )
    if not chapter_files:
        raise InputError(f"no chapter_N.json files in {directory}: export some with "
                         "`icdreason scrape guidelines --pdf FILE --export-json DIR`")
    other = _other_sections(_read_json(directory / "sections.json")) if (directory / "sections.json").exists() else []
    chapters = []
    for number, path in chapter_files:
        chapters += _chapter_sections(number, _read_json(path))
    # document order: Section I up to I.C, the chapters, then the remaining sections
    head = [s for s in other if s.section == "I"]
    tail = [s for s in other if s.section != "I"]
    if head and not any(s.id == "I.C" for s in head):
        head.append(Section("I.C", "Chapter-Specific Coding Guidelines", 1, "I", None, "I", None, None, []))
    return head + chapters + tail
