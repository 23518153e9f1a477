"""What the review page shows, as plain values for the templates (which escape every one of them).

Highlights are lists of ``(text, marked)`` segments, never HTML strings: the note, the trace and every other piece of
record text reach the page only through Jinja2's autoescaping. In the blind step the context holds the note alone, so
no part of the page, hidden or not, carries the model's code before the reviewer has entered theirs.
"""

from __future__ import annotations

import statistics
from typing import Any

from ...codes import chapter_label, chapter_of
from ..sampling import share_of
from ..session import CaseView, ReviewSession
from ..store import FINAL, REJECT_REASONS

GUIDELINE_CHARS = 700


def segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` cut into ``(piece, marked)`` pieces, the ``spans`` (start, end; not overlapping) marked."""
    out, pos = [], 0
    for start, end in sorted(spans):
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def progress(session: ReviewSession) -> dict[str, Any]:
    """Done / total and time per case (this reviewer's closed cases)."""
    seconds = [d.seconds for d in session.latest.values() if d.decision in FINAL and d.seconds is not None]
    total = len(session.cases)
    return {
        "decided": session.decided, "total": total, "remaining": session.remaining,
        "mean_seconds": round(statistics.fmean(seconds)) if seconds else None,
        "counts": dict(session.counts),
    }


def _previous(view: CaseView) -> str | None:
    prev = view.previous
    if prev is None or prev.decision == "skip":
        return None
    what = prev.decision + (f" {prev.expert_code}" if prev.expert_code else "")
    return what + (f" ({REJECT_REASONS[prev.reason]})" if prev.reason in REJECT_REASONS else "")


def prediction(view: CaseView, session: ReviewSession) -> dict[str, Any]:
    """The model's proposal: code, status, description, hierarchy, confidence, top-k, flags, knowledge-base text."""
    case, rec = view.case, view.case.record
    status = view.validation.status if view.validation else case.status or "no_output"
    hierarchy = [f"Chapter {chapter_label(p.code)}: {p.description}" if p.kind == "chapter" else
                 f"{p.code} {p.description}" for p in view.path]
    if not hierarchy and case.model_code and chapter_of(case.model_code):
        ch = chapter_of(case.model_code)
        hierarchy = [f"Chapter {ch.label}: {ch.title}"]
    conf, confidence_label = share_of(rec)
    confidence = (", ".join(f"{k} {float(v):.2f}" for k, v in conf.items() if v is not None)
                  if isinstance(conf, dict) and any(conf.values()) else None)
    top_k = [(str(t.get("code")), f"{float(t.get('support') or 0):.2f}", session.kb.description(str(t.get("code")))
              or "") for t in rec.get("top_k") or [] if isinstance(t, dict)]
    enrichment = view.enrichment or {}
    guideline = enrichment.get("guideline") or ""
    short = guideline if len(guideline) <= GUIDELINE_CHARS else guideline[:GUIDELINE_CHARS].rsplit(" ", 1)[0] + " …"
    return {
        "code": case.model_code, "status": status,
        "description": (view.validation.description if view.validation else None) or case.description,
        "message": view.validation.message if view.validation is not None and status != "billable" else None,
        "code_raw": rec.get("code_raw") if rec.get("code_raw") not in (None, case.model_code) else None,
        "hierarchy": hierarchy, "confidence": confidence, "confidence_label": confidence_label, "top_k": top_k if len(top_k) > 1 else [],
        "flags": [str(f) for f in rec.get("flags") or []],
        "symptoms": enrichment.get("symptoms"), "symptoms_from": enrichment.get("symptoms_from") or "code",
        "guideline": short, "guideline_full": guideline if short != guideline else None,
        "guideline_section": enrichment.get("guideline_section"), "tabular_notes": enrichment.get("tabular_notes"),
        "blind_code": view.blind_code, "blind_same": view.blind_code == case.model_code if view.blind_code else None,
        "acceptable": status == "billable" and bool(case.model_code),
    }


def case_page(view: CaseView, session: ReviewSession) -> dict[str, Any]:
    """The context of one case's page; in the blind step, the note without highlights and nothing of the model's."""
    blind_step = view.needs_blind_code
    note = view.note
    evidence = [] if blind_step else [(e.start, e.end) for e in view.evidence]
    context: dict[str, Any] = {
        "done": False, "case_id": view.case.case_id, "number": view.number, "blind": session.blind,
        "blind_step": blind_step, "flagged": view.flagged, "previous": _previous(view),
        "elapsed": round(session.elapsed), "progress": progress(session),
        "note": segments(note, evidence) if note is not None else None, "evidence": len(evidence),
        "trace": None, "unsupported": 0, "prediction": None,
    }
    if not blind_step:
        context["trace"] = segments(view.trace, [(s.start, s.end) for s in view.unsupported])
        context["unsupported"] = len(view.unsupported)
        context["prediction"] = prediction(view, session)
    return context


def done_page(session: ReviewSession) -> dict[str, Any]:
    """The context of the page after the last open case."""
    return {"done": True, "case_id": "", "blind": session.blind, "progress": progress(session)}
