"""Prompt files in the DeepICD-R1 authors' CSV shape: one chat turn per row.

The authors keep their task prompts as CSV files (``src/prompts/*.csv`` in DATEXIS/DeepICD-R1) with a header
``role,content`` and one row per turn: a ``system`` row, a ``user`` row whose text holds ``{note}``, and a final
``assistant`` row whose text is the start of the answer (a prefill such as ``<think>``, rendered with
``continue_final_message=True``). Their data script fills the note with ``str.format(note=...)`` in the user row only,
so ``{{``/``}}`` in that row stand for literal braces; :func:`parse_chat_csv` reads the row the same way and returns
it with ``{note}`` as icdreason's placeholder.

This module only parses; :func:`icdreason.prompts.load_template` turns the result into a
:class:`~icdreason.prompts.PromptTemplate`.
"""

from __future__ import annotations

import csv
import io
import string

from ..errors import UsageError

__all__ = ["is_chat_csv", "parse_chat_csv"]

_ROLES = ("system", "user", "assistant")


def is_chat_csv(text: str, name: str = "") -> bool:
    """True for a ``.csv`` file name, or text whose first line is the ``role,content`` header."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip().lower().replace(" ", "")
    return name.lower().endswith(".csv") or first in ("role,content", '"role","content"')


def parse_chat_csv(text: str, name: str) -> tuple[str, str, str]:
    """(system, user, prefill) of a ``role,content`` CSV; any other shape is a one-line :class:`UsageError` naming
    ``name`` and the row. The user text keeps ``{note}`` as the placeholder (``{{``/``}}`` become literal braces)."""
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        header = [h.strip().lower() for h in reader.fieldnames or []]
        rows = list(reader)
    except csv.Error as exc:
        raise UsageError(f"prompt file {name} is not valid CSV ({exc})") from None
    if header[:2] != ["role", "content"] or len(header) != 2:
        raise UsageError(f"prompt file {name}: expected the header 'role,content', found {','.join(header) or 'none'}")
    turns: list[tuple[str, str]] = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        values = list(row.values())
        if None in row or any(v is None for v in values):
            raise UsageError(f"prompt file {name}, row {number}: expected two cells (role, content)")
        role, content = (str(v) for v in values)
        role = role.strip().lower()
        if role not in _ROLES:
            raise UsageError(f"prompt file {name}, row {number}: unknown role {role!r} (system, user or assistant)")
        turns.append((role, content))
    roles = [r for r, _ in turns]
    if roles.count("user") != 1 or roles.count("system") > 1 or roles.count("assistant") > 1:
        raise UsageError(f"prompt file {name}: expected one user row, at most one system row and at most one "
                         f"assistant row (the prefill); found {', '.join(roles) or 'no rows'}")
    if "assistant" in roles and roles[-1] != "assistant":
        raise UsageError(f"prompt file {name}: the assistant row (the prefill) must be the last row")
    if "system" in roles and roles[0] != "system":
        raise UsageError(f"prompt file {name}: the system row must come first")
    by_role = dict(turns)
    user = _format_fields(by_role["user"], name)
    return by_role.get("system", ""), user, by_role.get("assistant", "")


def _format_fields(text: str, name: str) -> str:
    """The user row read as ``str.format(note=...)`` reads it: ``{note}`` is the one field, ``{{``/``}}`` are braces.
    Returned with ``{note}`` where the field stands; other fields are an error (their script would fail on them)."""
    out: list[str] = []
    seen = False
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise UsageError(f"prompt file {name}: the user row is not a valid format string ({exc}); write literal "
                         "braces as {{ and }}") from None
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        if field != "note" or spec or conversion:
            raise UsageError(f"prompt file {name}: the user row may only use the field {{note}}, found {{{field}}}")
        out.append("{note}")
        seen = True
    if not seen:
        raise UsageError(f"prompt file {name}: the user row never uses {{note}}: put {{note}} where the note goes")
    return "".join(out)
