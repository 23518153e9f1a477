"""The review session's logic, without any terminal I/O: which case comes next, what a decision records, resume.

A :class:`ReviewSession` walks one reviewer through the audit's cases in order. The cases this reviewer has not decided
come first, then the ones they skipped earlier; other reviewers' decisions are never shown or counted. Every decision is
committed at once; when the database is locked or read-only the decision is kept in a pending CSV file (the
``audit import`` format) and written with the next decision that gets through, or at the next ``start``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..codes import dotted, normalize
from .evidence import Evidence, Sentence, find_evidence, unsupported_trace_sentences
from .pending import PendingFile, pending_path
from .store import REJECT_REASONS, AuditDatabaseError, AuditStore, Case, Decision, now

if TYPE_CHECKING:
    from ..kb import CodeInfo, KnowledgeBase, Validation


@dataclass
class CaseView:
    """Everything the screen shows for one case."""

    case: Case
    number: int  # 1-based position in the audit
    total: int
    decided: int  # cases this reviewer has closed (accept / correct / reject)
    previous: Decision | None  # this reviewer's current decision on the case, when revisiting
    blind_code: str | None
    needs_blind_code: bool
    flagged: bool
    note: str | None
    trace: str
    evidence: list[Evidence]
    unsupported: list[Sentence]
    validation: Validation | None
    path: list[CodeInfo]
    enrichment: dict[str, Any] = field(default_factory=dict)


class ActionRefused(Exception):
    """A key that does not apply to the current case (the message says why); nothing was recorded."""


def code_hint(v: Validation) -> str:
    """One line about a code being typed: its description when billable, else what is wrong and a few suggestions."""
    if v.status == "billable":
        return f"✓ {v.description}"
    if v.status == "header":
        return f"header, not billable — e.g. {', '.join(v.suggestions[:3])}"
    if v.status == "unknown":
        return f"not in ICD-10-CM — e.g. {', '.join(v.suggestions[:3])}" if v.suggestions else "not in ICD-10-CM"
    return "not a code yet"


class ReviewSession:
    """One reviewer's pass over an audit. Drive it with :meth:`accept`, :meth:`correct`, :meth:`reject`, …"""

    def __init__(self, store: AuditStore, reviewer: str, kb: KnowledgeBase, *, blind: bool = False,
                 clock: Callable[[], float] = time.monotonic, pending: PendingFile | None = None):
        self.store = store
        self.reviewer = reviewer
        self.kb = kb
        self.blind = blind
        self.clock = clock
        info = store.info()
        if info is None:
            raise AuditDatabaseError(f"{store.path} holds no audit yet: run `icdreason audit start PREDICTIONS`")
        self.sha256 = info.predictions_sha256
        self.cases = store.cases()
        self.by_id = {c.case_id: c for c in self.cases}
        self.latest: dict[str, Decision] = {d.case_id: d for d in store.decisions(reviewer)}
        self.blind_codes: dict[str, str] = {k: v[0] for k, v in store.blind_codes(reviewer).items()}
        self.trail: list[str] = [d.case_id for d in self.latest.values() if d.decision != "skip"]
        self.skipped_now: dict[str, int] = {}
        self.pending = pending or PendingFile(pending_path(store, reviewer))
        self.counts = {"accept": 0, "correct": 0, "reject": 0, "skip": 0}
        self.current: Case | None = None
        self.flagged = False
        self._shown_at = 0.0
        self._blind_seconds: float | None = None
        self._show(self._next())

    # -- navigation ----------------------------------------------------------------------------------------------
    def _next(self) -> Case | None:
        """The first case this reviewer has not decided; then skipped ones (each comes back once per session)."""
        skipped = []
        for case in self.cases:
            d = self.latest.get(case.case_id)
            times = self.skipped_now.get(case.case_id, 0)
            if d is None and not times:
                return case
            if (d is None or d.decision == "skip") and times < 2:
                skipped.append((times, case.position, case))
        return min(skipped, key=lambda item: item[:2])[2] if skipped else None

    def _show(self, case: Case | None) -> None:
        self.current = case
        self._shown_at = self.clock()
        self._blind_seconds = None
        prev = self.latest.get(case.case_id) if case else None
        self.flagged = bool(prev and prev.flagged)

    def restart_clock(self) -> None:
        """The current case is on screen from now: count its time from here (a front end that shows a case later
        than the session chose it, e.g. a web page opened after the server started)."""
        self._shown_at = self.clock()

    @property
    def elapsed(self) -> float:
        """Seconds the current case has been on screen (what its decision will record)."""
        return self.clock() - self._shown_at

    @property
    def done(self) -> bool:
        return self.current is None

    @property
    def decided(self) -> int:
        return sum(d.decision in ("accept", "correct", "reject") for d in self.latest.values())

    @property
    def remaining(self) -> int:
        return len(self.cases) - self.decided

    def back(self) -> None:
        """Go to the case decided before the current one (this reviewer's own, this session or an earlier one)."""
        if not self.trail:
            raise ActionRefused("no earlier decision to go back to")
        cur = self.current.case_id if self.current else None
        if cur in self.trail:
            i = self.trail.index(cur)
            if i == 0:
                raise ActionRefused("this is your first decided case")
            self._show(self.by_id[self.trail[i - 1]])
        else:
            self._show(self.by_id[self.trail[-1]])

    # -- what the screen shows -----------------------------------------------------------------------------------
    def view(self) -> CaseView | None:
        case = self.current
        if case is None:
            return None
        rec = case.record
        note = rec.get("note")
        trace = rec.get("trace") or ""
        validation = self.kb.validate(case.model_code) if case.model_code else None
        path = self.kb.ancestors(case.model_code) if validation and validation.status in ("billable", "header") else []
        return CaseView(
            case=case, number=case.position + 1, total=len(self.cases), decided=self.decided,
            previous=self.latest.get(case.case_id), blind_code=self.blind_codes.get(case.case_id),
            needs_blind_code=self.needs_blind_code, flagged=self.flagged, note=note, trace=trace,
            evidence=find_evidence(note or "", trace), unsupported=unsupported_trace_sentences(note or "", trace),
            validation=validation, path=path, enrichment=self._enrichment(case),
        )

    def _enrichment(self, case: Case) -> dict[str, Any]:
        rec = case.record
        keys = ("symptoms", "symptoms_from", "guideline", "guideline_section", "tabular_notes", "enrichment_source")
        if any(rec.get(k) for k in keys) or not case.model_code:
            return {k: rec.get(k) for k in keys}
        from ..kb.enrich import enrichment_for

        return enrichment_for(self.kb, case.model_code)

    @property
    def needs_blind_code(self) -> bool:
        return bool(self.blind and self.current and self.current.case_id not in self.blind_codes)

    # -- codes ---------------------------------------------------------------------------------------------------
    def check_code(self, text: str) -> Validation:
        """Validate a code typed by the reviewer (status, description, suggestions, message)."""
        return self.kb.validate(text)

    def _billable(self, text: str) -> str:
        v = self.check_code(text)
        if v.status == "billable":
            return v.code
        if v.status == "header":
            raise ActionRefused(f"{v.code} is a header, not billable: choose a billable code, e.g. "
                                f"{', '.join(v.suggestions)}")
        raise ActionRefused(v.message or f"{text!r} is not a billable ICD-10-CM code")

    def enter_blind_code(self, text: str) -> str:
        """Blind mode: the reviewer's own code, before the model's is shown. Kept at once."""
        code = self._billable(text)
        case = self._require(blind_ok=True)
        self._blind_seconds = self.clock() - self._shown_at
        self.blind_codes[case.case_id] = code
        try:
            self.store.save_blind_code(self.reviewer, case.case_id, code, self._blind_seconds)
        except AuditDatabaseError:
            pass  # the decision row carries the blind code too; it is kept with the decision
        return code

    # -- decisions -----------------------------------------------------------------------------------------------
    def toggle_flag(self) -> bool:
        """Flag the current case for discussion (stored with the decision); returns the new state."""
        self._require()
        self.flagged = not self.flagged
        return self.flagged

    def accept(self) -> str | None:
        case = self._require()
        if case.status != "billable" or not case.model_code:
            what = f"{case.model_code} is {case.status}" if case.model_code else "the model gave no code"
            raise ActionRefused(f"cannot accept: {what}; correct (c) or reject (r) it")
        return self._decide("accept", expert_code=None)

    def correct(self, code: str) -> str | None:
        case = self._require()
        billable = self._billable(code)
        if case.model_code and normalize(billable) == normalize(case.model_code):
            raise ActionRefused(f"{billable} is the model's code: accept it (a) instead")
        return self._decide("correct", expert_code=billable)

    def reject(self, reason: str, comment: str | None = None, code: str | None = None) -> str | None:
        self._require()
        if reason not in REJECT_REASONS:
            raise ActionRefused(f"unknown reason {reason!r}: choose one of {', '.join(REJECT_REASONS)}")
        if reason == "other" and not (comment or "").strip():
            raise ActionRefused("reason 'other' needs a comment")
        expert = self._billable(code) if code and code.strip() else None
        return self._decide("reject", expert_code=expert, reason=reason, comment=(comment or "").strip() or None)

    def skip(self) -> str | None:
        case = self._require(blind_ok=True)
        self.skipped_now[case.case_id] = self.skipped_now.get(case.case_id, 0) + 1
        prev = self.latest.get(case.case_id)
        if prev is not None and prev.decision != "skip":
            self._show(self._next())  # skipping a revisited case keeps its decision
            return None
        return self._decide("skip", expert_code=None)

    def _require(self, *, blind_ok: bool = False) -> Case:
        if self.current is None:
            raise ActionRefused("no case left to review")
        if self.needs_blind_code and not blind_ok:
            raise ActionRefused("blind mode: enter your code first (e)")
        return self.current

    def _decide(self, decision: str, *, expert_code: str | None, reason: str | None = None,
                comment: str | None = None) -> str | None:
        case = self.current
        assert case is not None
        d = Decision(
            reviewer=self.reviewer, case_id=case.case_id, decision=decision,
            expert_code=dotted(expert_code) if expert_code else None,
            blind_code=self.blind_codes.get(case.case_id), reason=reason, comment=comment, flagged=self.flagged,
            seconds=round(self.clock() - self._shown_at, 3), source="session", predictions_sha256=self.sha256,
            decided_at=now(),
        )
        warning = self._commit(d)
        self.latest[case.case_id] = d
        self.counts[decision] += 1
        if decision != "skip":
            if case.case_id in self.trail:
                self.trail.remove(case.case_id)
            self.trail.append(case.case_id)
        self._show(self._next())
        return warning

    def _commit(self, d: Decision) -> str | None:
        """Write pending decisions and this one; on failure keep them all in the pending file."""
        batch = [*self.pending.decisions, d]
        try:
            self.store.record(batch)
        except AuditDatabaseError as exc:
            self.pending.save(batch)
            return (f"{exc} — decision kept in {self.pending.path}; it is written with your next decision, or load "
                    f"it with `icdreason audit import {self.pending.path} --db {self.store.path}`")
        self.pending.clear()
        return None
