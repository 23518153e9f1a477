"""``audit import``: decisions made offline in a spreadsheet, validated row by row.

Each row needs ``case_id``, ``reviewer`` and ``decision`` (accept | correct | reject | skip, or a/c/r/s); ``code`` is
the expert's code (required to correct), ``reason`` a rejection reason (the review screens' number, e.g. ``3``, its key or its label), and ``comment``, ``seconds``,
``blind_code``, ``flagged`` and ``decided_at`` are optional. Valid rows are written in one transaction; every other
row is reported with its line number and why, and nothing is half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..codes import normalize
from ..errors import InputError
from ..tables import read_rows as read_table
from .pending import CSV_COLUMNS
from .store import REJECT_REASONS, AuditDatabaseError, AuditStore, Case, Decision, now

if TYPE_CHECKING:
    from ..kb import KnowledgeBase

_DECISION_ALIASES = {
    "a": "accept", "accept": "accept", "accepted": "accept",
    "c": "correct", "correct": "correct", "corrected": "correct", "correction": "correct",
    "r": "reject", "reject": "reject", "rejected": "reject",
    "s": "skip", "skip": "skip", "skipped": "skip",
}
_HEADER_ALIASES = {"id": "case_id", "case": "case_id", "expert_code": "code", "comments": "comment"}
_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"", "false", "no", "n", "0"}


@dataclass
class RejectedRow:
    """A row that was not imported, and why."""

    line: int
    case_id: str
    reviewer: str
    error: str


@dataclass
class ImportResult:
    """What an import did: rows written, rows equal to the decision already stored, rows rejected."""

    imported: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    rows: dict[int, dict[str, str]] = field(default_factory=dict, repr=False)  # line -> the row as read


def reason_key(text: str) -> str | None:
    """The stored key of a rejection reason given as the number the review screens use for it (``3``), its key or
    its label (``"Missed severity"`` -> ``missed_severity``)."""
    t = text.strip().lower().replace("-", " ").replace("_", " ")
    for number, (key, label) in enumerate(REJECT_REASONS.items(), 1):
        if t in (str(number), key.replace("_", " "), label):
            return key
    return None


def reason_choices() -> str:
    """The reasons an import accepts, as the review screens number them: ``1 wrong chapter, 2 ...``."""
    return ", ".join(f"{number} {label}" for number, label in enumerate(REJECT_REASONS.values(), 1))


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of a CSV file (comma, semicolon or tab separated, as spreadsheets save
    them; standard quoting); headers are matched case-insensitively. A record that was misread (more fields than
    the header) is the row ``{"__error": why}``, rejected with its line like any invalid row."""
    rows = read_table(path, fmt="csv", delimiters=",;\t", bad_lines="keep")
    columns = [c for c in rows.columns if c != "__error"]
    names = {c: _HEADER_ALIASES.get(c.strip().lower().replace(" ", "_"), c.strip().lower().replace(" ", "_"))
             for c in columns}
    if not names:
        raise InputError(f"{path} is empty: expected a header row with {', '.join(CSV_COLUMNS[:3])}")
    missing = [c for c in ("case_id", "reviewer", "decision") if c not in names.values()]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)} (columns found: {', '.join(names)}); "
                         f"expected {', '.join(CSV_COLUMNS)}")
    out = []
    for line, row in zip(rows.lines, rows):
        if "__error" in row:
            out.append((line, {"__error": row["__error"]}))
        else:
            out.append((line, {names[k]: (v or "").strip() for k, v in row.items()}))
    return out


def _check(row: dict[str, str], case: Case | None, kb: KnowledgeBase, reviewers: set[str]) -> Decision | str:
    """A Decision for a valid row, else the reason it is rejected."""
    if "__error" in row:
        return row["__error"]
    case_id, reviewer = row.get("case_id", ""), row.get("reviewer", "")
    if not case_id:
        return "no case_id"
    if case is None:
        return f"case {case_id!r} is not in this audit"
    if not reviewer:
        return "no reviewer"
    if reviewer not in reviewers:
        known = ", ".join(sorted(reviewers)) or "none yet"
        return f"unknown reviewer {reviewer!r} (known: {known}): fix the name or pass --add-reviewer {reviewer}"
    decision = _DECISION_ALIASES.get(row.get("decision", "").lower())
    if decision is None:
        return f"decision {row.get('decision', '')!r} is not accept, correct, reject or skip"

    def billable(field_name: str) -> str | None | tuple[str]:
        raw = row.get(field_name, "")
        if not raw:
            return None
        v = kb.validate(raw)
        if v.status != "billable":
            return (f"{field_name} {raw!r}: {v.message}",)
        return v.code

    code, blind = billable("code"), billable("blind_code")
    for value in (code, blind):
        if isinstance(value, tuple):
            return value[0]
    model = normalize(case.model_code) if case.model_code else None
    if decision == "accept":
        if case.status != "billable":
            return f"cannot accept: the model's code {case.model_code or '(none)'} is {case.status}"
        if code and normalize(code) != model:
            return f"accept with code {code}, but the model predicted {case.model_code}: use decision correct"
        code = None
    if decision == "correct":
        if not code:
            return "correct needs the expert's code in the code column"
        if normalize(code) == model:
            return f"correct with the model's own code {code}: use decision accept"
    reason = None
    if row.get("reason"):
        reason = reason_key(row["reason"])
        if reason is None:
            return f"reason {row['reason']!r} is not one of: {reason_choices()} (the number or the label)"
    if decision == "reject" and reason is None:
        return f"reject needs a reason: one of {reason_choices()} (the number or the label)"
    if reason == "other" and not row.get("comment"):
        return "reason 'other' needs a comment"
    seconds = None
    if row.get("seconds"):
        try:
            seconds = float(row["seconds"])
        except ValueError:
            return f"seconds {row['seconds']!r} is not a number"
        if seconds < 0:
            return "seconds cannot be negative"
    flag = row.get("flagged", "").lower()
    if flag not in _TRUE | _FALSE:
        return f"flagged {row.get('flagged')!r} is not true or false"
    decided_at = None
    if row.get("decided_at"):
        try:
            decided_at = datetime.fromisoformat(row["decided_at"]).replace(tzinfo=None)
        except ValueError:
            return f"decided_at {row['decided_at']!r} is not an ISO date-time (2026-04-12T10:15:00)"
    return Decision(reviewer=reviewer, case_id=case_id, decision=decision, expert_code=code, blind_code=blind,
                    reason=reason, comment=row.get("comment") or None, flagged=flag in _TRUE, seconds=seconds,
                    decided_at=decided_at or now())


def import_decisions(store: AuditStore, kb: KnowledgeBase, path: Path, *, add_reviewers: tuple[str, ...] = (),
                     source: str | None = None, dry_run: bool = False, in_order: bool = False) -> ImportResult:
    """Validate every row of a decisions CSV and write the valid ones (unless ``dry_run``).

    A case decided twice by one reviewer is a duplicate row (rejected), unless ``in_order``: the rows are then one
    session's decisions in the order they were made (a pending file), and a later row is a later decision, written
    after the earlier one as the session would have written it.
    """
    info = store.info()
    if info is None:
        raise AuditDatabaseError(f"{store.path} holds no audit yet: run `icdreason audit start PREDICTIONS "
                                 f"--reviewer NAME --db {store.path}` first")
    cases = {c.case_id: c for c in store.cases()}
    reviewers = set(store.reviewers()) | set(add_reviewers)
    current = {(d.reviewer, d.case_id): d for d in store.decisions()}
    result = ImportResult()
    seen: dict[tuple[str, str], int] = {}
    for line, row in read_rows(path):
        result.rows[line] = row
        key = (row.get("reviewer", ""), row.get("case_id", ""))
        checked = _check(row, cases.get(key[1]), kb, reviewers)
        if isinstance(checked, str):
            result.rejected.append(RejectedRow(line, key[1], key[0], checked))
            continue
        if key in seen and not in_order:
            result.rejected.append(RejectedRow(line, key[1], key[0], f"duplicate of line {seen[key]}"))
            continue
        seen[key] = line
        old = current.get(key)
        if old is not None and (old.decision, old.expert_code, old.reason, old.comment, old.flagged) == (
                checked.decision, checked.expert_code, checked.reason, checked.comment, checked.flagged):
            result.unchanged += 1
            continue
        current[key] = checked
        checked.source = source or f"import:{path.name}"
        checked.predictions_sha256 = info.predictions_sha256
        result.decisions.append(checked)
    result.imported = len(result.decisions)
    if not dry_run:
        for name in sorted({d.reviewer for d in result.decisions} - set(store.reviewers())):
            store.add_reviewer(name, "import")
        store.record(result.decisions)
    return result
