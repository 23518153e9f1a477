"""The guideline JSON files: read the nested and the flat shape into guideline rows, and write rows back as nested JSON.

**Nested** (the DeepICD-R1 authors' release, and what icdreason writes): one top-level key, the chapter title with its
code range, whose value is an object of heading → (subheading → … → text), to any depth::

    {"Diseases of the Circulatory System (I00-I99)": {
        "Hypertension": {"description": "…", "Hypertension with Heart Disease": "…"},
        "Sequelae of Cerebrovascular Disease": {"Laterality defaults": ["…", "…"]}}}

Every object and every leaf becomes one row whose ``path`` is the keys from the top of the file down to it, exactly as
written. A list of strings is a leaf: its ``text`` is the items as bullet lines (``- item``, in order) and ``items``
keeps the list. A section that has text of its own *and* subsections (only the PDF parser makes such sections) writes
that text under the empty key ``""``, first. A key with a heading mark (``a. Hypertension``, ``Section II. …``) gives
the row its official id (``I.C.9.a``); other keys are numbered by position (``I.C.10.s1.s2``).

**Flat** (what icdreason 0.x exported): an object of several heading → text pairs in document order, the chapter's
own heading first (``{"9. Chapter 9: …": "…", "a. Hypertension": "…"}``); ``sections.json`` holds Sections I.A, I.B,
II, III, IV and the appendix the same way, nested by their heading marks.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..codes import CHAPTER_RANGES, chapter_of
from ..errors import InputError, KnowledgeBaseError
from ..kb.scraped import GuidelineRow

OWN_TEXT = ""  #: the key under which a section with subsections keeps its own text
_MARKED = re.compile(r"^(?:Section\s+(?P<section>IV|III|II|I)|(?P<appendix>Appendix\s+[IV]+)"
                     r"|(?P<mark>[A-Za-z]|\d{1,2}))\.\s+(?P<title>.+)$", re.DOTALL)
_RANGE = re.compile(r"\(\s*([A-Z]\d[0-9A-Z])\s*[-–—]\s*([A-Z]\d[0-9A-Z])\s*\)")
_CHAPTER_PREFIX = re.compile(r"^Chapter\s+(\d{1,2})\s*:", re.IGNORECASE)
_KEY_CHARS = 40


class _Object(dict):
    """A JSON object that remembers the keys it had twice (``json.loads`` keeps only the last value)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    found = _Object(pairs)
    found.duplicates = tuple(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return found


def load(path: Path) -> Any:
    """The parsed JSON of one file; an unreadable file is a one-line :class:`InputError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_object)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} is not readable JSON ({exc}): pass a folder of chapter_N.json files") from None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list"
    return "text"


def _step(where: str, key: str | int) -> str:
    """``where`` one step down: ``$["Hypertension"]`` or ``$[…][2]``; long keys are shortened for the message."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    short = key if len(key) <= _KEY_CHARS else key[:_KEY_CHARS - 1].rstrip() + "…"
    return f"{where}[{json.dumps(short, ensure_ascii=False)}]"


def bullet_lines(items: list[str] | tuple[str, ...]) -> str:
    """A list leaf's text: one ``- item`` line per string, in order."""
    return "\n".join(f"- {item}" for item in items)


def split_mark(key: str) -> tuple[str | None, str]:
    """(heading mark, title) of a key: ``"a. Hypertension"`` → ``("a", "Hypertension")``; ``(None, key)`` unmarked."""
    found = _MARKED.match(key.strip())
    if not found:
        return None, key.strip()
    mark = found.group("section") or found.group("mark")
    if found.group("appendix"):
        mark = " ".join(found.group("appendix").split())
    return mark, found.group("title").strip()


class _Walker:
    """Turns one nested file into rows (document order), raising one-line errors that give the JSON path."""

    def __init__(self, file: Path, section: str, chapter: int | None):
        self.file, self.section, self.chapter = file, section, chapter
        self.rows: list[GuidelineRow] = []

    def fail(self, where: str, problem: str) -> InputError:
        return InputError(f"{self.file.name}: {where}: {problem}")

    def node(self, value: Any, *, node_id: str, parent: str | None, level: int, title: str, path: tuple[str, ...],
             where: str) -> None:
        common = dict(id=node_id, parent=parent, level=level, section=self.section, chapter=self.chapter, title=title,
                      page_start=None, page_end=None, path=path)
        if isinstance(value, str):
            self.rows.append(GuidelineRow(text=value, **common))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise self.fail(_step(where, index), f"expected text in a list, got {_kind(item)}")
            self.rows.append(GuidelineRow(text=bullet_lines(value), items=tuple(value), **common))
        elif isinstance(value, dict) and value:
            self._object(value, common, where)
        else:
            raise self.fail(where, f"expected text, a list of texts or an object of headings, got {_kind(value)}")

    def _object(self, value: dict, common: dict, where: str) -> None:
        if getattr(value, "duplicates", ()):
            raise self.fail(where, f"heading {value.duplicates[0]!r} appears twice: give each heading once")
        keys = list(value)
        own = value.get(OWN_TEXT, "")
        if OWN_TEXT in value:
            if keys[0] != OWN_TEXT or not isinstance(own, str):
                raise self.fail(_step(where, OWN_TEXT), "a section's own text (the empty key) must be text and come "
                                                        "first, before its subsections")
            if len(keys) == 1:
                raise self.fail(where, "an object with only its own text: write the text itself instead")
        self.rows.append(GuidelineRow(text=own, **common))
        used: set[str] = set()
        for index, key in enumerate((k for k in keys if k != OWN_TEXT), start=1):
            mark, title = split_mark(key)
            sub = mark if mark is not None and mark not in used and " " not in mark else f"s{index}"
            used.add(sub)
            self.node(value[key], node_id=f"{common['id']}.{sub}", parent=common["id"], level=common["level"] + 1,
                      title=title, path=(*common["path"], key), where=_step(where, key))


def check_chapter_title(file: Path, number: int, title: str) -> None:
    """The chapter title's code range (e.g. ``(I00-I99)``, ``(F01 – F99)``, ``(O00-O9A)``) or its ``Chapter N:``
    prefix must agree with the chapter number of the file name; a title with neither is taken as it is."""
    for first, last in _RANGE.findall(title):
        found = {chapter_of(first), chapter_of(last)}
        if found != {CHAPTER_RANGES[number - 1]}:
            numbers = sorted(str(c.number) for c in found if c is not None) or ["none"]
            raise InputError(f"{file.name}: the title's code range {first}-{last} is in chapter "
                             f"{'/'.join(numbers)}, not {number} ({CHAPTER_RANGES[number - 1].range}): rename the "
                             "file or fix the title")
    prefix = _CHAPTER_PREFIX.match(title)
    if prefix and int(prefix.group(1)) != number:
        raise InputError(f"{file.name}: the title says chapter {prefix.group(1)}, the file name {number}: rename the "
                         "file or fix the title")


def _strip_chapter_mark(key: str, number: int) -> str:
    """The title of a chapter's top key: ``"9. Chapter 9: …"`` (the flat export) → ``"Chapter 9: …"``."""
    mark, title = split_mark(key)
    return title if mark == str(number) else key.strip()


def _flat_as_nested(data: dict, where: str, fail) -> dict:
    """A flat chapter file (several heading → text) as the nested shape: the first heading over the others."""
    for key, value in data.items():
        if not isinstance(value, str):
            raise fail(_step(where, key), f"expected text, got {_kind(value)} (a file with several top-level keys is "
                                          "the flat heading → text shape; a nested file has one, the chapter title)")
    (first, intro), *rest = data.items()
    if not rest:
        return {first: intro}
    return {first: {**({OWN_TEXT: intro} if intro else {}), **dict(rest)}}


def read_chapter(file: Path, number: int) -> tuple[list[GuidelineRow], str]:
    """The rows of ``chapter_N.json`` (nested or flat) and the shape it had (``"nested"`` or ``"flat"``)."""
    if not 1 <= number <= len(CHAPTER_RANGES):
        raise InputError(f"{file.name}: ICD-10-CM has chapters 1 to {len(CHAPTER_RANGES)}: rename the file")
    data = load(file)
    walker = _Walker(file, "I", number)
    if not isinstance(data, dict) or not data:
        raise walker.fail("$", f"expected an object with the chapter title as its one key, got {_kind(data)}")
    if data.duplicates:
        raise walker.fail("$", f"heading {data.duplicates[0]!r} appears twice: give each heading once")
    shape = "flat" if len(data) > 1 else "nested"  # one key, even with a text value: the chapter title
    if len(data) > 1:
        data = _flat_as_nested(data, "$", walker.fail)
    (key, value), = data.items()
    title = _strip_chapter_mark(key, number)
    check_chapter_title(file, number, title)
    walker.node(value, node_id=f"I.C.{number}", parent="I.C", level=2, title=title, path=(key,),
                where=_step("$", key))
    return walker.rows, shape


def _flat_sections_as_nested(data: dict, file: Path) -> dict:
    """A flat ``sections.json`` as the nested shape, each heading under the nearest heading of a higher rank
    (Section → A. → 1. → a.)."""
    nested: dict = {}
    open_nodes: list[tuple[int, str, dict]] = []  # (rank, key, container of its children)
    for key, text in data.items():
        if not isinstance(text, str):
            raise InputError(f"{file.name}: {_step('$', key)}: expected text, got {_kind(text)}")
        mark, _ = split_mark(key)
        if mark is None:
            raise InputError(f"{file.name}: heading {key!r} has no section mark: expected e.g. 'A. Title'")
        rank = 0 if (mark in ("I", "II", "III", "IV") and key.startswith("Section")) or " " in mark else \
            1 if mark.isupper() else 2 if mark.isdigit() else 3
        while open_nodes and open_nodes[-1][0] >= rank:
            open_nodes.pop()
        if rank and not open_nodes:
            raise InputError(f"{file.name}: heading {key!r} comes before any 'Section' heading")
        parent = open_nodes[-1][2] if open_nodes else nested
        children: dict = {OWN_TEXT: text} if text else {}
        parent[key] = children
        open_nodes.append((rank, key, children))
    return _collapse(nested)


def _collapse(node: dict) -> dict:
    """Objects that hold only their own text become that text (an empty one: empty text)."""
    out: dict = {}
    for key, value in node.items():
        if isinstance(value, dict):
            if not value or list(value) == [OWN_TEXT]:
                out[key] = value.get(OWN_TEXT, "")
            else:
                out[key] = _collapse(value)
        else:
            out[key] = value
    return out


def read_sections(file: Path) -> list[GuidelineRow]:
    """The rows of ``sections.json``: Sections I.A, I.B, II, III, IV and the appendix (nested or flat)."""
    data = load(file)
    walker = _Walker(file, "", None)
    if not isinstance(data, dict) or not data:
        raise walker.fail("$", f"expected an object of 'Section …' headings, got {_kind(data)}")
    if data.duplicates:
        raise walker.fail("$", f"heading {data.duplicates[0]!r} appears twice: give each heading once")
    if all(isinstance(v, str) for v in data.values()) and len(data) > 1:
        data = _flat_sections_as_nested(data, file)
    for key, value in data.items():
        mark, title = split_mark(key)
        if mark is None or not (" " in mark or key.strip().startswith("Section")):
            raise walker.fail(_step("$", key), "expected a 'Section I.' … 'Section IV.' or 'Appendix I.' heading")
        walker.section = mark
        walker.node(value, node_id=mark, parent=None, level=0, title=title, path=(key,), where=_step("$", key))
    return walker.rows


# -- writing ----------------------------------------------------------------------------------------------------------
def file_name(row: GuidelineRow) -> str:
    """The file a row belongs in: ``chapter_N.json`` for Section I.C.N and below, else ``sections.json``."""
    return f"chapter_{row.chapter}.json" if row.chapter is not None else "sections.json"


def _default_key(row: GuidelineRow) -> str:
    """The key a row stored without a path (by the PDF parser, or before paths were kept) is written under."""
    mark = row.id.rsplit(".", 1)[-1]
    if row.chapter is not None and row.id == f"I.C.{row.chapter}":
        return row.title
    if row.level == 0:
        return f"{row.id}. {row.title}" if row.id.startswith("Appendix") else f"Section {row.id}. {row.title}"
    return row.title if re.fullmatch(r"s\d+", mark) else f"{mark}. {row.title}"


def with_paths(rows: Sequence[GuidelineRow]) -> list[GuidelineRow]:
    """``rows`` (in document order) with every missing ``path`` filled in from the section tree: the keys the rows
    have in the nested files :func:`nested_files` writes (a chapter's part I.C.N starts its own file)."""
    paths: dict[str, tuple[str, ...]] = {}
    out = []
    for row in rows:
        if row.path is None:
            starts_file = row.parent is None or (row.chapter is not None and row.id == f"I.C.{row.chapter}")
            above = () if starts_file else paths.get(row.parent, ())
            row = row._replace(path=(*above, _default_key(row)))
        paths[row.id] = row.path
        out.append(row)
    return out


def nested_files(rows: Sequence[GuidelineRow]) -> dict[str, dict]:
    """The nested JSON of every file (``chapter_N.json``, ``sections.json``) that holds ``rows``, keys in document
    order: a row with subsections in the same file is an object (its own text under ``""``, first), a row with
    ``items`` a list, any other row its text."""
    rows = with_paths(rows)
    with_children = {(file_name(r), r.path[:-1]) for r in rows if len(r.path) > 1}
    files: dict[str, dict] = {}
    for row in rows:
        name = file_name(row)
        container = files.setdefault(name, {})
        for key in row.path[:-1]:
            container = container.get(key)
            if not isinstance(container, dict):
                raise KnowledgeBaseError(f"guideline section {row.id} sits under {key!r}, which {name} does not "
                                         "hold as a section: import the guidelines again")
        key = row.path[-1]
        if key in container:
            raise KnowledgeBaseError(f"two guideline sections are written as {key!r} in {name}: import the "
                                     "guidelines again")
        if (name, row.path) in with_children:
            container[key] = {OWN_TEXT: row.text} if row.text else {}
        else:
            container[key] = list(row.items) if row.items is not None else row.text
    return files
