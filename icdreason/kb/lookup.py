"""One code's full card: description, hierarchy path, billable status, tabular notes (what ``kb lookup`` shows)."""

from __future__ import annotations

from .store import KnowledgeBase


def describe_code(kb: KnowledgeBase, raw: str) -> dict:
    """Everything the knowledge base knows about one code, as a JSON-ready dictionary."""
    verdict = kb.validate(raw)
    info = kb.lookup(raw) if verdict.status in ("billable", "header") else None
    if info is None:
        return {"input": raw, "found": False, "status": verdict.status, "message": verdict.message,
                "suggestions": verdict.suggestions}
    below = 0 if info.billable else kb.count_billable_descendants(info.code)
    examples = [] if info.billable else [c.code for c in kb.billable_descendants(info.code, limit=3)]
    card = {
        "input": raw,
        "found": True,
        "status": verdict.status,
        "code": info.code,
        "description": info.description,
        "kind": info.kind,
        "billable": info.billable,
        "billable_below": below,
        "examples": examples,
        "chapter": info.chapter,
        "category": info.category,
        "block": info.block,
        "path": [{"code": a.code, "kind": a.kind, "description": a.description} for a in kb.ancestors(info.code)],
        "notes": kb.notes(info.code),
        "seventh_characters": kb.seventh_characters(info.code) if info.depth > 2 else {},
    }
    card.update(_enrichment(kb, info.code))
    return card


def _enrichment(kb: KnowledgeBase, code: str) -> dict:
    """The symptom description and the most relevant guideline passage, with where it comes from (None when the KB
    has none)."""
    from .enrich import best_passage, guideline, symptoms

    found = symptoms(kb, code)
    best = best_passage(guideline(kb, code))
    excerpt = None
    if best is not None:
        body = " ".join(best.text.split())
        excerpt = f"{best.where}: {body[:300]}{'…' if len(body) > 300 else ''}"
    return {
        "symptoms": found.text if found else None,
        "symptoms_from": found.from_code if found else None,
        "symptoms_source": found.source if found else None,
        "guideline": excerpt,
        "guideline_section": best.id if best else None,
        "guideline_path": list(best.path) if best is not None and best.path else None,
    }
