"""Starting an audit: read a predictions file, draw the sample once, and pin the file by its SHA-256."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import InputError, UsageError
from .sampling import code_confidence, sample
from ..files import file_sha256
from .store import AuditDatabaseError, AuditInfo, AuditStore, Case, now

if TYPE_CHECKING:
    from ..kb import KnowledgeBase
    from .importer import ImportResult


def check_same_predictions(info: AuditInfo, path: Path, sha256: str) -> None:
    """Raise when ``path`` is not the predictions file the audit was started on."""
    if sha256 != info.predictions_sha256:
        raise AuditDatabaseError(
            f"{path} (sha256 {sha256[:12]}…) is not the predictions file this audit started on "
            f"({info.predictions_path}, sha256 {info.predictions_sha256[:12]}…"
            f"{', run ' + info.run_id if info.run_id else ''}): pass that file, or start a new audit with another --db"
        )


def to_case(position: int, record: dict[str, Any], kb: KnowledgeBase) -> Case:
    """A case from a prediction record; status, description and hierarchy fields come from the KB when missing."""
    code = record.get("code") or None
    status, description = record.get("status"), record.get("description")
    chapter, category = record.get("chapter"), record.get("category")
    if code and (status is None or description is None or chapter is None):
        v = kb.validate(code)
        code = v.code if v.status != "malformed" else code
        status = status or v.status
        description = description or v.description
        chapter = chapter if chapter is not None else v.chapter
        category = category or v.category
    if not code:
        status = status or "no_output"
    return Case(position=position, case_id=str(record["id"]), model_code=code, status=status,
                description=description, chapter=chapter, category=category,
                confidence=code_confidence(record), record=record)


def start_audit(store: AuditStore, predictions: Path, kb: KnowledgeBase, *, sample_size: int | None = None,
                strategy: str = "random", seed: int = 0) -> tuple[AuditInfo, bool]:
    """Create the audit on first use (sampling the records) or check that ``predictions`` is the file it started on.

    Returns the audit and whether it was created now.
    """
    from ..records import read_predictions

    if not predictions.exists():
        raise InputError(f"predictions file not found: {predictions}")
    sha256 = file_sha256(predictions)
    info = store.info()
    if info is not None:
        check_same_predictions(info, predictions, sha256)
        return info, False
    records = read_predictions(predictions)
    if not records:
        raise InputError(f"{predictions} holds no prediction records")
    seen: set[str] = set()
    unique = []
    for i, record in enumerate(records):
        record = dict(record)
        record["id"] = str(record.get("id") if record.get("id") not in (None, "") else f"#{i + 1}")
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        unique.append(record)
    if sample_size is None and strategy != "all" and strategy != "random":
        raise UsageError(f"--strategy {strategy} needs --sample N")
    chosen = sample(unique, sample_size, strategy if sample_size is not None else "all", seed)
    cases = [to_case(pos, unique[i], kb) for pos, i in enumerate(chosen)]
    run_ids = {r.get("run_id") for r in unique if r.get("run_id")}
    info = AuditInfo(
        predictions_path=str(predictions), predictions_sha256=sha256,
        run_id=", ".join(sorted(run_ids)) if run_ids else None, records=len(records),
        strategy=strategy if sample_size is not None else "all", sample_size=sample_size, seed=seed,
        kb_release=getattr(kb, "release", None), icdreason_version=__version__, created_at=now(),
    )
    store.create(info, cases)
    return info, True


def join_audit(store: AuditStore, kb: KnowledgeBase, reviewer: str) -> list[tuple[Path, ImportResult, Path | None]]:
    """Register ``reviewer`` and write the decisions kept in their pending files while the database was unavailable
    (next to the database, and in the icdreason home when its folder was not writable).

    Returns (pending file, what its import did, the file keeping its rejected rows or None) for each file found.
    The decisions are written in the order they were made (a case decided twice keeps both, the later one current);
    a row that cannot be written (e.g. a code no longer billable) is appended with why to ``….pending.csv.rejected``,
    which earlier starts may have begun: nothing is ever lost or overwritten. The pending file is then removed.
    """
    from .importer import import_decisions
    from .pending import keep_rejected, pending_files

    store.add_reviewer(reviewer, "session")
    joined = []
    for pending in pending_files(store, reviewer):
        result = import_decisions(store, kb, pending, source="session", in_order=True)
        kept = None
        if result.rejected:
            kept = keep_rejected(pending, [(result.rows.get(r.line, {}), r.error) for r in result.rejected])
        pending.unlink()
        joined.append((pending, result, kept))
    return joined
