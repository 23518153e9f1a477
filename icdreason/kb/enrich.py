"""Enrichment of a code with a plain-language symptom description and the relevant coding-guideline section.

Both come from knowledge-base tables that ``icdreason scrape`` fills (``symptoms`` and ``guidelines``). Every function
here works on a knowledge base without those tables or rows: it then returns ``None`` (or an empty list).

- :func:`symptoms` walks up the hierarchy (``I21.41`` → ``I21.4`` → ``I21``) until a stored description is found and
  says which code it came from.
- :func:`guideline` returns the guideline sections of the code's chapter (Section I.C.N and its subsections), the
  most relevant subsection first by keyword overlap with the code's description and its ancestors' descriptions.
- :func:`enrichment_for` packs both into the four fields of a prediction record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..codes import chapter_of, dotted, is_well_formed, normalize
from .store import KnowledgeBase

__all__ = ["GuidelineSection", "SymptomDescription", "enrichment_for", "guideline", "symptoms", "DEFAULT_SOURCES"]

#: Preference order when a code has descriptions from several sources: the paper's source first.
DEFAULT_SOURCES: tuple[str, ...] = ("gesund", "medlineplus")


@dataclass(frozen=True)
class SymptomDescription:
    """A stored symptom description that applies to ``code``; ``from_code`` is where it was found."""

    code: str
    from_code: str
    source: str
    language: str
    title: str | None
    text: str
    url: str | None
    mapping: str

    @property
    def inherited(self) -> bool:
        """True when the description belongs to an ancestor of the code."""
        return self.from_code != self.code


@dataclass(frozen=True)
class GuidelineSection:
    """One section of the official coding guidelines, with its relevance score for the code asked about."""

    id: str
    title: str
    chapter: int | None
    level: int
    text: str
    page_start: int | None
    page_end: int | None
    score: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.id} {self.title}".strip()


def _prefixes(code: str) -> list[str]:
    """The undotted code and every ancestor down to its category, longest first (the ICD-10-CM hierarchy)."""
    if not is_well_formed(code):
        return []
    key = normalize(code)
    return [key[:n] for n in range(len(key), 2, -1)] if len(key) >= 3 else []


# -- symptoms -------------------------------------------------------------------------------------------------------
def symptoms(kb: KnowledgeBase, code: str, *, sources: tuple[str, ...] | None = None) -> SymptomDescription | None:
    """The symptom description for ``code``, walking up the hierarchy until one is found; None when none is stored.

    ``sources`` restricts and orders the sources (default :data:`DEFAULT_SOURCES`, then any other source); the most
    specific code wins over the preferred source.
    """
    if not code:
        return None
    keys = _prefixes(code)
    if not keys:
        return None
    row = kb.nearest_symptom(keys, sources=tuple(sources) if sources else None,
                             preference=tuple(sources) if sources else DEFAULT_SOURCES)
    if row is None:
        return None
    return SymptomDescription(
        code=dotted(keys[0]), from_code=dotted(row.code_nodot), source=row.source, language=row.language,
        title=row.title, text=row.text, url=row.url, mapping=row.mapping,
    )


# -- guidelines -----------------------------------------------------------------------------------------------------
_STOP = frozenset(
    "a an and are as at be by for from in into is it its not of on or other than that the this to with without "
    "unspecified specified due type use code codes coding elsewhere classified nec nos site disease diseases "
    "disorder disorders condition conditions".split()
)
_WORD = re.compile(r"[a-z][a-z0-9]+")


def _stem(word: str) -> str:
    """A crude stem: the first six letters (hypertension/hypertensive, diabetes/diabetic, fracture/fractures)."""
    return word[:6]


def keywords(text: str) -> set[str]:
    """Lower-case content words of a text, crudely stemmed, without stop words."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _code_terms(kb: KnowledgeBase, code: str) -> tuple[int | None, set[str], set[str]]:
    """(chapter, keywords of the code's own description, keywords of its ancestors' descriptions)."""
    info = kb.lookup(code)
    if info is None:
        ch = chapter_of(code)
        return (ch.number if ch else None), set(), set()
    own = keywords(info.description)
    above: set[str] = set()
    for anc in kb.ancestors(info.code):
        if anc.kind in ("category", "subcategory", "code"):
            above |= keywords(anc.description)
    return info.chapter, own, above - own


def guideline(kb: KnowledgeBase, code: str) -> list[GuidelineSection]:
    """The guideline sections of the code's chapter, the most relevant subsection first; [] when none are stored.

    Relevance is keyword overlap with the code's description (and, at half weight, its ancestors' descriptions):
    title words count three times, body words once, divided by the square root of the body length in hundreds of
    words so that long sections do not win by size alone. Ties keep document order; the chapter's own introduction
    comes after every subsection that matched.
    """
    if not code or not is_well_formed(code) or not kb.has_rows("guidelines"):
        return []
    chapter, own, above = _code_terms(kb, code)
    if chapter is None:
        return []
    scored = []
    for position, row in enumerate(kb.chapter_guidelines(chapter)):
        title_words, body_words = keywords(row.title), keywords(row.text)
        hits = 3 * len(own & title_words) + len(own & body_words)
        hits += 0.5 * (3 * len(above & title_words) + len(above & body_words))
        length = max(1.0, len(row.text.split()) / 100)
        score = round(hits / length**0.5, 4)
        rank = 0.0 if row.level <= 2 else -score  # the chapter's introduction never outranks a matching subsection
        scored.append((rank, position, GuidelineSection(row.id, row.title, row.chapter, row.level, row.text,
                                                        row.page_start, row.page_end, score)))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [section for *_, section in scored]


# -- the record fields ----------------------------------------------------------------------------------------------
def enrichment_for(kb: KnowledgeBase, code: str | None, *, sources: tuple[str, ...] | None = None) -> dict:
    """The enrichment fields of a prediction record for ``code``.

    Keys: ``symptoms`` (text), ``symptoms_from`` (the dotted code it was found on), ``guideline`` (the most relevant
    section's title and text) and ``guideline_section`` (its id, e.g. ``I.C.9.a``); each None when nothing applies.
    """
    out: dict = {"symptoms": None, "symptoms_from": None, "guideline": None, "guideline_section": None}
    if not code:
        return out
    found = symptoms(kb, code, sources=sources)
    if found is not None:
        out["symptoms"] = found.text
        out["symptoms_from"] = found.from_code
    sections = guideline(kb, code)
    if sections:
        best = sections[0]
        out["guideline"] = f"{best.title}\n{best.text}".strip() if best.text else best.title
        out["guideline_section"] = best.id
    return out
