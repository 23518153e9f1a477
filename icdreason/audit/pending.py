"""The CSV layout of decisions made outside the database (offline spreadsheets, and decisions kept while the
database was locked), and the pending file a session falls back to."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .store import AuditStore, Decision

#: Columns of a decisions CSV; ``case_id``, ``reviewer`` and ``decision`` are required in an import.
CSV_COLUMNS = ("case_id", "reviewer", "decision", "code", "reason", "comment", "seconds", "blind_code", "flagged",
               "decided_at")


def pending_path(store: AuditStore, reviewer: str) -> Path:
    """Where a reviewer's decisions wait while the database is locked or read-only: ``DB.NAME.pending.csv``."""
    return Path(f"{store.path}.{reviewer}.pending.csv")


def decision_row(d: Decision) -> dict[str, str]:
    """One decision as a CSV row."""
    return {
        "case_id": d.case_id, "reviewer": d.reviewer, "decision": d.decision, "code": d.expert_code or "",
        "reason": d.reason or "", "comment": d.comment or "",
        "seconds": "" if d.seconds is None else f"{d.seconds:.3f}", "blind_code": d.blind_code or "",
        "flagged": "true" if d.flagged else "", "decided_at": d.decided_at.isoformat() if d.decided_at else "",
    }


def write_decisions_csv(path: Path, decisions: list[Decision]) -> None:
    """Write decisions as CSV atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for d in decisions:
            writer.writerow(decision_row(d))
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
            from ..config import home_dir

            fallback = home_dir() / "audit-pending" / self.path.name
            fallback.parent.mkdir(parents=True, exist_ok=True)
            write_decisions_csv(fallback, self.decisions)
            self.path = fallback

    def clear(self) -> None:
        self.decisions = []
        if self.path.exists():
            self.path.unlink()
