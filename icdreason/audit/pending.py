"""The CSV layout of decisions made outside the database (offline spreadsheets, and decisions kept while the
database was locked), and the pending file a session falls back to."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import home_dir
from ..errors import writing
from ..tables.cells import CsvWriter
from .store import AuditStore, Decision

#: Columns of a decisions CSV; ``case_id``, ``reviewer`` and ``decision`` are required in an import.
CSV_COLUMNS = ("case_id", "reviewer", "decision", "code", "reason", "comment", "seconds", "blind_code", "flagged",
               "decided_at")


def pending_path(store: AuditStore, reviewer: str) -> Path:
    """Where a reviewer's decisions wait while the database is locked or read-only: ``DB.NAME.pending.csv``."""
    return Path(f"{store.path}.{reviewer}.pending.csv")


def fallback_path(store: AuditStore, reviewer: str) -> Path:
    """Where they wait when the database's folder is not writable either: in the icdreason home."""
    from ..config import home_dir

    return home_dir() / "audit-pending" / pending_path(store, reviewer).name


def pending_files(store: AuditStore, reviewer: str) -> list[Path]:
    """The reviewer's pending files that exist (next to the database, then in the home fallback)."""
    return [p for p in (pending_path(store, reviewer), fallback_path(store, reviewer)) if p.exists()]


def keep_rejected(pending: Path, rows: list[tuple[dict[str, str], str]]) -> Path:
    """Append pending rows that could not be written, each with why, to ``PENDING.rejected`` (a decisions CSV that
    ``audit import`` reads, fixed or as it is); rows kept by earlier starts stay. Returns that file."""
    kept = pending.with_name(pending.name + ".rejected")
    new = not kept.exists() or kept.stat().st_size == 0
    with writing(kept), open(kept, "a", newline="", encoding="utf-8") as fh:
        writer = CsvWriter(fh)
        if new:
            writer.writerow([*CSV_COLUMNS, "error"])
        for row, why in rows:
            writer.writerow([*(row.get(c, "") for c in CSV_COLUMNS), why])
        fh.flush()
        os.fsync(fh.fileno())
    return kept


def decision_row(d: Decision) -> dict[str, str]:
    """One decision as a CSV row."""
    return {
        "case_id": d.case_id, "reviewer": d.reviewer, "decision": d.decision, "code": d.expert_code or "",
        "reason": d.reason or "", "comment": d.comment or "",
        "seconds": "" if d.seconds is None else f"{d.seconds:.3f}", "blind_code": d.blind_code or "",
        "flagged": "true" if d.flagged else "", "decided_at": d.decided_at.isoformat() if d.decided_at else "",
    }


def write_decisions_csv(path: Path, decisions: list[Decision]) -> None:
    """Write decisions as CSV atomically (temporary file, then rename); formula-like text cells neutralised."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = CsvWriter(fh)
        writer.writerow(CSV_COLUMNS)
        for d in decisions:
            row = decision_row(d)
            writer.writerow(row[c] for c in CSV_COLUMNS)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class PendingFile:
    """Decisions that could not be written to the database yet, mirrored to a CSV file after every change."""

    def __init__(self, path: Path):
        self.path = path
        self.decisions: list[Decision] = []

    def save(self, decisions: list[Decision]) -> None:
        """Mirror the kept decisions to the file; when its folder is not writable, to the icdreason home instead."""
        self.decisions = list(decisions)
        try:
            write_decisions_csv(self.path, self.decisions)
        except OSError:
            fallback = home_dir() / "audit-pending" / self.path.name
            fallback.parent.mkdir(parents=True, exist_ok=True)
            write_decisions_csv(fallback, self.decisions)
            self.path = fallback

    def clear(self) -> None:
        self.decisions = []
        if self.path.exists():
            self.path.unlink()
