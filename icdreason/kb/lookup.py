"""One code's full card: description, hierarchy path, billable status, tabular notes (what ``kb lookup`` shows)."""

from __future__ import annotations

from .store import KnowledgeBase


def describe_code(kb: KnowledgeBase, raw: str) -> dict:
    """Everything the knowledge base knows about one code, as a JSON-ready dictionary. Text that is not shaped like
    a code ("heart attack") is looked up in the Alphabetic Index, and the card is that of the code it leads to, with
    the index path (``looked_up``)."""
    verdict = kb.validate(raw)
    looked_up = None
    if verdict.status == "malformed" and kb.has_alphabetic_index:
        hits = kb.index_lookup(raw, limit=1)
        if hits:
            looked_up = {"term": raw, "index_path": hits[0].path, "printed": hits[0].printed,
                         "manifestation": hits[0].manif}
            verdict = kb.validate(hits[0].code)
        else:
            verdict.message = f"{raw!r} is not a code and the Alphabetic Index has no entry for it: try kb search"
    info = kb.lookup(verdict.code) if verdict.status in ("billable", "header") else None
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
        "looked_up": looked_up,
        "index": _index_entries(kb, info.code, info.description),
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


def _index_entries(kb: KnowledgeBase, code: str, description: str, limit: int = 5) -> list[dict]:
    """Alphabetic Index entries that lead to a code: those printing it, and those printing a header above it whose
    path words complete to it (so "Cellulitis › lower limb" L03.11- for L03.116, not "Cellulitis › axilla")."""
    from ..codes import normalize
    from .alpha.words import words

    key, own = normalize(code), words(description)
    out = []
    for entry in kb.index_entries_for(code, limit=60):
        printed = normalize(entry.code.rstrip("-"))
        if printed != key and kb.index_completer.complete(entry.code, own, words(entry.path)) != key:
            continue
        out.append({"source": entry.source, "path": entry.path, "code": entry.code})
        if len(out) >= limit:
            break
    return out
