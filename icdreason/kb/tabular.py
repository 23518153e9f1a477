"""Stream the CMS ICD-10-CM tabular XML into plain rows: codes, notes, 7th-character definitions, chapters, blocks.

The XML is read one chapter at a time with ``lxml.etree.iterparse`` and each chapter is cleared once processed, so
memory stays flat whatever the release. 7th characters are expanded exactly as the tabular list defines them: a
``sevenChrDef`` applies to every leaf below the node that declares it (a nearer declaration overrides a farther one),
leaves shorter than six characters are padded with the placeholder ``X``, and a leaf that receives 7th characters
becomes a header (not billable) whose billable children are the expanded codes.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..codes import dotted, normalize, seventh_character_code
from ..errors import InputError

#: Tabular note elements and the name each gets in the ``notes`` table.
NOTE_KINDS = {
    "inclusionTerm": "inclusion_term",
    "includes": "includes",
    "excludes1": "excludes1",
    "excludes2": "excludes2",
    "codeFirst": "code_first",
    "useAdditionalCode": "use_additional_code",
    "codeAlso": "code_also",
    "notes": "notes",
    "sevenChrNote": "seventh_character_note",
}

_RANGE_IN_TITLE = re.compile(r"\s*\(([A-Z0-9]{3})-([A-Z0-9]{3})\)\s*$")
# The tabular list states some 7th-character exclusions only in prose, e.g. under S06: "7th characters D and S do not
# apply to codes in category S06 with 6th character 7 - death due to ..., or 8 - death due to ...".
_SEVENTH_EXCLUSION = re.compile(
    r"7th characters? ((?:[A-Z0-9](?:,\s*|\s+and\s+|\s+or\s+)?)+) do(?:es)? not apply to codes in (?:category|subcategory) "
    r"([A-Z0-9.]+) with 6th characters? (.*)$"
)
_EXCLUSION_SIXTH = re.compile(r"(?:^|,\s*|\bor\s+|\band\s+)([0-9A-Z])\s+-")


def bundled_release() -> Path:
    """Path of the April-1-2026 tabular XML that the ``simple-icd-10-cm`` package ships as package data."""
    data = importlib.resources.files("simple_icd_10_cm") / "data"
    candidates = sorted(p.name for p in data.iterdir() if p.name.startswith("icd10c") and p.name.endswith(".xml"))
    if not candidates:
        raise InputError("the simple-icd-10-cm package ships no tabular XML: pass --source PATH to a CMS tabular XML")
    return Path(str(data / candidates[-1]))


@dataclass
class Tabular:
    """Everything the knowledge base needs from one tabular XML release, as column lists."""

    release: str = ""
    codes: dict[str, list] = field(default_factory=lambda: {k: [] for k in CODE_COLUMNS})
    notes: dict[str, list] = field(default_factory=lambda: {"code": [], "kind": [], "seq": [], "text": []})
    seventh: dict[str, list] = field(default_factory=lambda: {"code": [], "character": [], "meaning": []})
    chapters: dict[str, list] = field(
        default_factory=lambda: {"number": [], "first_category": [], "last_category": [], "title": []}
    )


CODE_COLUMNS = (
    "code", "code_nodot", "description", "kind", "billable", "placeholder",
    "parent", "category", "block", "chapter", "depth",
)


def read_tabular(source: Path) -> Tabular:
    """Parse a CMS tabular XML file (``icd10cm_tabular_*.xml``) into a :class:`Tabular`."""
    if not source.exists():
        raise InputError(f"tabular XML not found: {source}")
    out = Tabular()
    try:
        for event, element in etree.iterparse(str(source), events=("end",), tag=("version", "chapter")):
            if element.tag == "version":
                out.release = (element.text or "").strip()
                continue
            _read_chapter(element, out)
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise InputError(f"{source} is not a well-formed CMS tabular XML file ({exc})") from None
    if not out.chapters["number"]:
        raise InputError(f"{source} holds no <chapter> elements: is it the ICD-10-CM *tabular* XML?")
    return out


def _text(element, tag: str) -> str:
    child = element.find(tag)
    return " ".join((child.text or "").split()) if child is not None else ""


def _add_code(out: Tabular, **row) -> None:
    for key in CODE_COLUMNS:
        out.codes[key].append(row[key])


def _add_notes(out: Tabular, code: str, element) -> None:
    for child in element:
        kind = NOTE_KINDS.get(child.tag)
        if kind is None:
            continue
        for seq, note in enumerate(child.iterfind("note")):
            text = " ".join((note.text or "").split())
            if text:
                out.notes["code"].append(code)
                out.notes["kind"].append(kind)
                out.notes["seq"].append(seq)
                out.notes["text"].append(text)


def _seven_chr_def(element) -> dict[str, str] | None:
    node = element.find("sevenChrDef")
    if node is None:
        return None
    return {ext.get("char"): " ".join((ext.text or "").split()) for ext in node.iterfind("extension")}


def _seventh_exclusions(element) -> list[tuple[set[str], set[str]]]:
    """(excluded 7th characters, 6th characters they are excluded for) parsed from a node's note prose."""
    rules = []
    for item in [*element.iterfind("sevenChrNote/note"), *element.iterfind("notes/note")]:
        match = _SEVENTH_EXCLUSION.search(" ".join((item.text or "").split()))
        if match:
            chars = set(re.findall(r"\b[A-Z0-9]\b", match.group(1)))
            sixth = set(_EXCLUSION_SIXTH.findall(match.group(3)))
            if chars and sixth:
                rules.append((chars, sixth))
    return rules


@dataclass
class _Inherited:
    """What a diag node inherits from its ancestors."""

    seventh: dict[str, str] | None = None
    placeholder: bool = False
    exclusions: list[tuple[set[str], set[str]]] = field(default_factory=list)


def _read_chapter(chapter, out: Tabular) -> None:
    number = int(_text(chapter, "name"))
    title = _text(chapter, "desc")
    match = _RANGE_IN_TITLE.search(title)
    first, last = (match.group(1), match.group(2)) if match else ("", "")
    clean_title = _RANGE_IN_TITLE.sub("", title)
    out.chapters["number"].append(number)
    out.chapters["first_category"].append(first)
    out.chapters["last_category"].append(last)
    out.chapters["title"].append(clean_title)
    chapter_code = str(number)
    _add_code(
        out, code=chapter_code, code_nodot=chapter_code, description=clean_title, kind="chapter", billable=False,
        placeholder=False, parent=None, category=None, block=None, chapter=number, depth=0,
    )
    _add_notes(out, chapter_code, chapter)
    # Sections without codes of their own (C00-C96, C00-C75, V00-X58 ...) are super-blocks: the sections that follow
    # inside their range are their children.
    open_blocks: list[tuple[str, str, int]] = []  # (id, last category, depth)
    for section in chapter.iterfind("section"):
        block = section.get("id")
        block_first, _, block_last = block.partition("-")
        block_last = block_last or block_first
        while open_blocks and not block_first <= open_blocks[-1][1]:
            open_blocks.pop()
        parent, depth = (open_blocks[-1][0], open_blocks[-1][2] + 1) if open_blocks else (chapter_code, 1)
        _add_code(
            out, code=block, code_nodot=block, description=_RANGE_IN_TITLE.sub("", _text(section, "desc")),
            kind="block", billable=False, placeholder=False, parent=parent, category=None, block=block,
            chapter=number, depth=depth,
        )
        _add_notes(out, block, section)
        diags = section.findall("diag")
        if not diags:
            open_blocks.append((block, block_last, depth))
        for diag in diags:
            _read_diag(diag, out, parent=block, block=block, chapter=number, depth=depth + 1, inherited=_Inherited())


def _read_diag(diag, out: Tabular, *, parent: str, block: str, chapter: int, depth: int, inherited: _Inherited) -> None:
    code = dotted(_text(diag, "name"))
    nodot = normalize(code)
    description = _text(diag, "desc")
    own = _seven_chr_def(diag)
    if own is not None:
        for char, meaning in own.items():
            out.seventh["code"].append(code)
            out.seventh["character"].append(char)
            out.seventh["meaning"].append(meaning)
    placeholder = inherited.placeholder or diag.get("placeholder") == "true"
    here = _Inherited(
        seventh=own if own is not None else inherited.seventh,
        placeholder=placeholder,
        exclusions=inherited.exclusions + _seventh_exclusions(diag),
    )
    children = diag.findall("diag")
    expands = not children and bool(here.seventh)
    leaf = not children and not expands
    if len(nodot) == 3:
        kind = "category"
    else:
        kind = "code" if leaf else "subcategory"
    _add_code(
        out, code=code, code_nodot=nodot, description=description, kind=kind, billable=leaf,
        placeholder=placeholder, parent=parent, category=nodot[:3], block=block,
        chapter=chapter, depth=depth,
    )
    _add_notes(out, code, diag)
    for child in children:
        _read_diag(child, out, parent=code, block=block, chapter=chapter, depth=depth + 1, inherited=here)
    if expands:
        sixth = nodot.ljust(6, "X")[5]
        excluded = {c for chars, sixths in here.exclusions if sixth in sixths for c in chars}
        for char, meaning in here.seventh.items():
            if char in excluded:
                continue
            full = seventh_character_code(code, char)
            _add_code(
                out, code=full, code_nodot=normalize(full), description=f"{description}, {meaning}", kind="code",
                billable=True, placeholder=placeholder or len(nodot) < 6, parent=code,
                category=nodot[:3], block=block, chapter=chapter, depth=depth + 1,
            )


def iter_code_rows(tab: Tabular) -> Iterator[dict]:
    """Rows of the codes table as dictionaries (for tests and debugging)."""
    for i in range(len(tab.codes["code"])):
        yield {k: tab.codes[k][i] for k in CODE_COLUMNS}
