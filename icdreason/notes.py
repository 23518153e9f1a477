"""Reading admission notes: text files, globs, folders, JSONL/CSV/Parquet tables or stdin; sections; truncation.

A bad item never stops a batch: empty, binary, non-UTF-8 or unreadable inputs become a :class:`Note` with flags and
a ``problem`` message, and the pipeline records why. Only problems with the request itself (a path that does not
exist, a table without the text column, duplicate ids) are errors, raised before any work starts.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .encodable import encodable_text
from .errors import InputError, UsageError
from .tables import pick_column, read_rows

__all__ = ["Note", "Section", "read_notes", "decode_text", "sections", "truncate_middle", "TABLE_SUFFIXES"]

TABLE_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")
TEXT_SUFFIXES = (".txt", ".text", ".note")


@dataclass
class Note:
    """One admission note. ``flags`` name what was unusual; ``problem`` says why it cannot be predicted, if so."""

    id: str
    text: str
    source: str
    flags: list[str] = field(default_factory=list)
    problem: str | None = None


# -- decoding ----------------------------------------------------------------------------------------------------
def _looks_binary(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return len(sample) > 0 and control / len(sample) > 0.1


def decode_text(data: bytes) -> tuple[str, list[str], str | None]:
    """Bytes -> (text, flags, problem). UTF-8 (BOM allowed); otherwise decoded with replacement characters and
    flagged; binary data gives empty text and the ``binary`` flag; CRLF becomes LF."""
    if _looks_binary(data):
        return "", ["binary"], "binary file (NUL or control bytes): not a text note"
    flags: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        flags.append("decoded_with_replacement")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return "", [*flags, "empty_note"], "empty note"
    return text, flags, None


# -- reading -----------------------------------------------------------------------------------------------------
def _read_file_note(path: Path, note_id: str) -> Note:
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Note(note_id, "", str(path), ["unreadable"], f"cannot read {path}: {reason}")
    text, flags, problem = decode_text(data)
    return Note(note_id, text, str(path), flags, problem)


def _expand(arg: str) -> list[Path]:
    """One command-line input -> files: a file, a folder (walked recursively for text and table files), a glob."""
    path = Path(arg).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.rglob("*")
                       if (p.is_file() or p.is_symlink()) and p.suffix.lower() in TEXT_SUFFIXES + TABLE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise InputError(f"folder {path} has no .txt notes or note tables (.jsonl/.csv/.parquet)")
        return found
    if path.exists() or os.path.lexists(path):
        return [path]
    if any(ch in arg for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(arg), recursive=True))
        files = [p for p in matches if not p.is_dir()]
        if not files:
            raise InputError(f"no files match {arg!r}")
        return files
    raise InputError(f"input not found: {arg} (give note files, folders, globs, a .jsonl/.csv/.parquet table or -)")


def _cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas-written files
        return None
    return value if isinstance(value, str) else str(value)


def _table_notes(path: Path, id_column: str | None, text_column: str | None, *, data: bytes | None = None,
                 kind: str | None = None, label: str | None = None) -> list[Note]:
    label = label or str(path)
    rows = read_rows(path, fmt=kind, data=data, source=label, errors="replace", bad_lines="keep")
    columns = [c for c in rows.columns if c != "__error"]
    text_col = id_col = None
    if columns or not len(rows):  # a table whose every line is unreadable has no columns to check
        text_col = pick_column(columns, text_column, ("text", "note", "note_text"), source=label, what="text",
                               option="--text-column")
        id_col = pick_column(columns, id_column, ("id", "note_id", "hadm_id"), source=label, what="id",
                             option="--id-column", required=False)
    stem = Path(label).stem
    notes = []
    for i, row in enumerate(rows, 1):
        where = f"{label}:{rows.lines[i - 1] if rows.lines else i}"
        if "__error" in row:
            notes.append(Note(f"{stem}:{rows.lines[i - 1]}", "", where, ["unreadable"], row["__error"]))
            continue
        raw_id = _cell(row.get(id_col)) if id_col else None
        note_id = raw_id.strip() if raw_id and raw_id.strip() else f"{stem}:{i}"
        cell = row.get(text_col) if text_col else None
        value = _cell(cell)
        flags = [] if value is None or isinstance(cell, str) else ["not_text_cell"]  # e.g. a number in the column
        if value is not None and "\x00" in value:
            value, flags = value.replace("\x00", ""), [*flags, "nul_removed"]
        if value is None or not value.strip():
            notes.append(Note(note_id, "", where, [*flags, "empty_note"], "empty note"))
            continue
        text = value.replace("\r\n", "\n").replace("\r", "\n")
        if "\ufffd" in text:
            flags.append("decoded_with_replacement")
        notes.append(Note(note_id, text, where, flags))
    return notes


def read_notes(inputs: list[str], *, id_column: str | None = None, text_column: str | None = None,
               stdin: BinaryIO | None = None) -> list[Note]:
    """Read every note named by ``inputs`` (files, folders, globs, tables, ``-``) in order.

    Text files: the id is the file stem. Tables: ``--id-column`` (default ``id``/``note_id``/``hadm_id``, else
    ``<stem>:<row>``) and ``--text-column`` (default ``text``/``note``/``note_text``). ``-`` reads stdin: a JSONL
    table when ``--text-column`` is given, else one note with id ``stdin``. Duplicate ids raise :class:`InputError`
    naming them, before anything runs.
    """
    if not inputs:
        raise UsageError("no notes given: pass note files, folders, globs, a .jsonl/.csv/.parquet table, "
                         "or - for stdin")
    notes: list[Note] = []
    for arg in inputs:
        if arg == "-":
            data = (stdin or sys.stdin.buffer).read()
            if text_column:
                notes.extend(_table_notes(Path("stdin.jsonl"), id_column, text_column, data=data, kind="jsonl",
                                          label="stdin"))
            else:
                text, flags, problem = decode_text(data)
                notes.append(Note("stdin", text, "stdin", flags, problem))
            continue
        for path in _expand(arg):
            if path.suffix.lower() in TABLE_SUFFIXES:
                notes.extend(_table_notes(path, id_column, text_column))
            else:
                notes.append(_read_file_note(path, path.stem))
    for note in notes:
        _make_encodable(note)
    counts = Counter(n.id for n in notes)
    dupes = [i for i, c in counts.items() if c > 1]
    if dupes:
        where = {d: [n.source for n in notes if n.id == d][:3] for d in dupes[:5]}
        shown = "; ".join(f"{d!r} in {', '.join(s)}" for d, s in where.items())
        more = f" and {len(dupes) - 5} more" if len(dupes) > 5 else ""
        raise InputError(f"duplicate note ids: {shown}{more}. Ids must be unique (file stems or --id-column)")
    return notes


def _make_encodable(note: Note) -> None:
    """Replace lone surrogates (file names that are not UTF-8) in the id, source and text, so that the record can be
    written and ``--resume`` finds the id it wrote."""
    note_id, source, text = (encodable_text(v) for v in (note.id, note.source, note.text))
    if (note_id, text) != (note.id, note.text) and "decoded_with_replacement" not in note.flags:
        note.flags.append("decoded_with_replacement")
    note.id, note.source, note.text = note_id, source, text


# -- sections ----------------------------------------------------------------------------------------------------
@dataclass
class Section:
    """A part of a note under one heading. ``kind`` is a canonical name (see :data:`SECTION_KINDS`)."""

    kind: str
    heading: str
    text: str
    start: int


SECTION_KINDS: dict[str, tuple[str, ...]] = {
    "chief_complaint": ("chief complaint", "cc", "reason for admission", "reason for visit", "presenting complaint"),
    "present_illness": ("history of present illness", "present illness", "hpi", "history of the present illness"),
    "past_history": ("past medical history", "medical history", "pmh", "past surgical history", "past history",
                     "surgical history", "major surgical or invasive procedure"),
    "medications": ("medications on admission", "medication on admission", "medications", "home medications",
                    "admission medications", "meds"),
    "allergies": ("allergies", "allergy"),
    "family_history": ("family history", "fh"),
    "social_history": ("social history", "sh"),
    "exam": ("physical exam", "physical examination", "exam", "admission exam", "examination", "vital signs",
             "review of systems", "ros"),
    "results": ("pertinent results", "labs", "laboratory", "imaging", "studies", "data"),
    "assessment": ("assessment and plan", "assessment", "impression", "a/p", "assessment/plan", "plan"),
}
_HEADING_TO_KIND = {h: kind for kind, headings in SECTION_KINDS.items() for h in headings}
_HEADING = re.compile(r"^[ \t]*([A-Za-z][A-Za-z /&()'-]{0,48}?)[ \t]*:[ \t]*", re.MULTILINE)


def sections(text: str) -> list[Section]:
    """Split a MIMIC-style note into sections at ``Heading:`` lines (known headings, or short ALL-CAPS ones).

    Text before the first heading is a section of kind ``preamble``; unknown all-caps headings give ``other``.
    """
    marks: list[tuple[int, int, str, str]] = []
    for m in _HEADING.finditer(text):
        heading = m.group(1).strip()
        key = re.sub(r"\s+", " ", heading.lower())
        kind = _HEADING_TO_KIND.get(key)
        if kind is None:
            if heading.isupper() and len(heading.split()) <= 5 and len(heading) >= 3:
                kind = "other"
            else:
                continue
        marks.append((m.start(), m.end(), kind, heading))
    out: list[Section] = []
    first = marks[0][0] if marks else len(text)
    if text[:first].strip():
        out.append(Section("preamble", "", text[:first].strip(), 0))
    for i, (start, body, kind, heading) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        out.append(Section(kind, heading, text[body:end].strip(), body))
    return out


# -- truncation --------------------------------------------------------------------------------------------------
#: The line :func:`truncate_middle` puts where it cut a note.
TRUNCATION_MARKER = re.compile(r"\n?\[\.\.\. \d+ characters omitted \.\.\.\]\n?")


def without_truncation_marker(text: str) -> str:
    """The note's own text: the truncation marker (not the patient's words) replaced by a paragraph break."""
    return TRUNCATION_MARKER.sub("\n\n", text)


def truncate_middle(text: str, max_chars: int, *, head_share: float = 0.6) -> tuple[str, bool]:
    """Keep the head and the tail of a long note, cutting the middle at line or word boundaries.

    The cut is marked in the text (``[... N characters omitted ...]``). Returns (text, truncated).
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text, False
    marker_room = 48
    budget = max(max_chars - marker_room, 2)
    head_len = int(budget * head_share)
    tail_len = budget - head_len
    head = text[:head_len]
    cut = max(head.rfind("\n"), head.rfind(" "))
    if cut > head_len * 0.8:
        head = head[:cut]
    tail = text[len(text) - tail_len:]
    cut = min((i for i in (tail.find("\n"), tail.find(" ")) if i >= 0), default=-1)
    if 0 <= cut < tail_len * 0.2:
        tail = tail[cut + 1:]
    omitted = len(text) - len(head) - len(tail)
    return f"{head.rstrip()}\n[... {omitted} characters omitted ...]\n{tail.lstrip()}", True
