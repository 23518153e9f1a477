"""Enrichment of a code with a plain-language symptom description and the relevant coding-guideline section.

Both come from knowledge-base tables that ``icdreason scrape`` fills (``symptoms`` and ``guidelines``). Every function
here works on a knowledge base without those tables or rows: it then returns ``None`` (or an empty list).

- :func:`symptoms` walks up the hierarchy (``I21.41`` → ``I21.4`` → ``I21``) until a stored description is found and
  says which code it came from.
- :func:`guideline` returns the guideline passages of the code's chapter (Section I.C.N and below), the most relevant
  first by keyword overlap of the code's description and its ancestors' descriptions with each passage's heading path
  and text. Each passage says where it comes from (:attr:`GuidelineSection.where`, e.g. ``Chapter 9 › Hypertension ›
  Hypertension with Heart Disease``).
- :func:`enrichment_for` packs both into the four fields of a prediction record; the guideline field starts with the
  heading path.

**A fresh knowledge base has neither** (``icdreason kb build`` makes only the code tables). Then
:func:`enrichment_source` is ``"tabular"``, :data:`EMPTY_ENRICHMENT_NOTICE` says how to fill it, and
:func:`enrichment_for` falls back to what every knowledge base has: :func:`tabular_notes`, the Tabular List's own
notes for the code and its parents (inclusion terms, includes, excludes1/2, code first, use additional code, code
also), in the record's ``tabular_notes`` field with ``enrichment_source`` ``"tabular"``. The same fallback applies to
a code no scraped text reaches when the knowledge base has some.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from ..codes import chapter_of, dotted, is_well_formed, normalize
from .scraped import GuidelineRow
from .store import KnowledgeBase

__all__ = ["GuidelineSection", "SymptomDescription", "best_passage", "enrichment_for", "guideline", "heading_path",
           "symptoms", "DEFAULT_SOURCES", "EMPTY_ENRICHMENT_NOTICE", "TABULAR_LABEL", "enrichment_source",
           "tabular_notes", "enrichment_notice", "prompt_texts"]

#: What separates the headings of a passage's path when it is shown.
PATH_SEPARATOR = " › "

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
    path: tuple[str, ...] | None = None  # the headings from the top of its file down to it (None: stored without)

    @property
    def label(self) -> str:
        return f"{self.id} {self.title}".strip()

    @property
    def where(self) -> str:
        """Where the passage comes from: its heading path (``Chapter 10 › COPD and Asthma › Acute exacerbation``),
        or its id and title when it was stored without one."""
        return heading_path(self.path, self.chapter) if self.path else self.label


def heading_path(path: tuple[str, ...] | list[str], chapter: int | None) -> str:
    """A heading path for people: a chapter's long title (the top key of its file) shortened to ``Chapter N``, the
    headings below it as written, joined by ``›``; a chapter's own passage keeps its title."""
    if chapter is None or not path:
        return PATH_SEPARATOR.join(path)
    if len(path) > 1:
        return PATH_SEPARATOR.join([f"Chapter {chapter}", *path[1:]])
    return path[0] if path[0].lower().startswith("chapter") else f"Chapter {chapter}: {path[0]}"


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


@lru_cache(maxsize=8192)
def keywords(text: str) -> frozenset[str]:
    """Lower-case content words of a text, crudely stemmed, without stop words (memoised: passages repeat)."""
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2)


def _code_terms(kb: KnowledgeBase, code: str) -> tuple[int | None, frozenset[str], frozenset[str]]:
    """(chapter, keywords of the code's own description, keywords of its ancestors' descriptions)."""
    info = kb.lookup(code)
    if info is None:
        ch = chapter_of(code)
        return (ch.number if ch else None), frozenset(), frozenset()
    own = keywords(info.description)
    above: set[str] = set()
    for anc in kb.ancestors(info.code):
        if anc.kind in ("category", "subcategory", "code"):
            above |= keywords(anc.description)
    return info.chapter, own, frozenset(above - own)


#: Headings that say what kind of text follows, not its topic: such a passage is ranked by the heading above it.
_GENERIC_HEADINGS = frozenset("descri overvi rule rules refere defini note notes exampl usage purpos list catego "
                              "types genera sequen".split())
_CODE = r"[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?"
_MENTION = re.compile(rf"\b({_CODE})(?:\s*[-–—]\s*({_CODE}))?\b")


@lru_cache(maxsize=8192)
def _mentions(text: str) -> tuple[tuple[str, str], ...]:
    """The codes and code ranges a text names, undotted: ``"I21.0–I21.4 and I50"`` → ((I210, I214), (I50, I50))."""
    return tuple((normalize(first), normalize(last or first)) for first, last in _MENTION.findall(text))


def _mention_points(code_nodot: str, text: str) -> int:
    """How specifically ``text`` names the code: the length of the longest mention (a code, a category or a range)
    that covers it, 0 when none does (``I21.4`` in "I21.0–I21.4" → 4, in "category I21" → 3)."""
    best = 0
    for first, last in _mentions(text):
        if code_nodot[:len(first)] >= first and code_nodot[:len(last)] <= last:
            best = max(best, min(len(first), len(last)))
    return best


def _topic(path: tuple[str, ...] | None, title: str) -> tuple[str, str]:
    """(the heading that names the passage's topic, the headings above it below the chapter title): a generic own
    heading (``description``, ``rule``, ``examples``) hands the topic to the nearest specific heading above it."""
    headings = list(path[1:]) if path and len(path) > 1 else [title]
    while len(headings) > 1 and keywords(headings[-1]) <= _GENERIC_HEADINGS:
        headings.pop()
    return headings[-1], " ".join(headings[:-1])


def _chapters(kb: KnowledgeBase, code_nodot: str, chapter: int) -> list[int]:
    """The code's chapter, then any chapter whose title lists the code (the guidelines treat COVID-19, U07.1, in
    chapter 1, although the code sits in chapter 22)."""
    found = [chapter]
    for number in range(1, 23):
        rows = kb.chapter_guidelines(number) if number != chapter else []
        if rows and rows[0].level == 2 and _mention_points(code_nodot, rows[0].title) >= 4:
            found.append(number)
    return found


class _Passage(NamedTuple):
    """What the ranking reads of one stored row, worked out once per row."""

    topic: str                  # the heading that names its topic
    topic_words: frozenset[str]
    heading_words: frozenset[str]  # of the headings above the topic heading, below the chapter title
    text_words: frozenset[str]
    length: float               # the square root of the text's length in hundreds of words (at least 1)


@lru_cache(maxsize=16384)
def _passage(row: GuidelineRow) -> _Passage:
    topic, headings = _topic(row.path, row.title)
    return _Passage(topic, keywords(topic), keywords(headings), keywords(row.text),
                    max(1.0, len(row.text.split()) / 100) ** 0.5)


def guideline(kb: KnowledgeBase, code: str) -> list[GuidelineSection]:
    """The guideline passages of the code's chapter, the most relevant first; [] when none are stored.

    Relevance is keyword overlap with the code's description (and, at half weight, its ancestors' descriptions): words
    of the passage's topic heading (its own, or the nearest one above when its own is generic like ``description``)
    count three times, of the headings above that (below the chapter title) twice, of its text once, and each other
    word of the topic heading takes half a point off; a heading that names the code (``Z79``, ``I21.0–I21.4``) adds
    twice, and text that names it once, the length of the code named. The sum is divided by the square root of the
    text's length in hundreds of words so that long passages do not win by size alone. Headings without text of
    their own (a nested file's objects) are not passages. Ties keep document order; the chapter's own introduction
    comes after every passage that matched.
    """
    if not code or not is_well_formed(code) or not kb.has_rows("guidelines"):
        return []
    chapter, own, above = _code_terms(kb, code)
    if chapter is None:
        return []
    key = normalize(code)
    scored = []
    rows = [row for number in _chapters(kb, key, chapter) for row in kb.chapter_guidelines(number)]
    for position, row in enumerate(rows):
        if not row.text.strip():
            continue
        p = _passage(row)
        hits = 3 * len(own & p.topic_words) + 2 * len(own & p.heading_words) + len(own & p.text_words)
        hits += 0.5 * (3 * len(above & p.topic_words) + 2 * len(above & p.heading_words) + len(above & p.text_words))
        hits -= 0.5 * len(p.topic_words - own - above - _GENERIC_HEADINGS)  # what the heading names beyond the code
        hits += 2 * _mention_points(key, p.topic) + _mention_points(key, row.text)
        score = round(hits / p.length, 4)
        rank = 0.0 if row.level <= 2 else -score  # the chapter's introduction never outranks a matching subsection
        scored.append((rank, position, GuidelineSection(row.id, row.title, row.chapter, row.level, row.text,
                                                        row.page_start, row.page_end, score, row.path)))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [section for *_, section in scored]


def best_passage(sections: list[GuidelineSection]) -> GuidelineSection | None:
    """The passage to show for a code: the first of :func:`guideline`'s ranking when it matched the code, or when it
    is the chapter's own introduction; None when no passage of the chapter matched."""
    if sections and (sections[0].score > 0 or sections[0].level <= 2):
        return sections[0]
    return None


# -- the Tabular List's own notes: what every knowledge base has -----------------------------------------------------
#: Said once per run when the knowledge base has no scraped symptom descriptions and no guideline passages.
EMPTY_ENRICHMENT_NOTICE = (
    "enrichment: the knowledge base has no symptom descriptions or guidelines, so only the Tabular List's notes are "
    "used (enrichment_source: tabular); fill it with `icdreason scrape symptoms --source medlineplus --chapter N` "
    "and `icdreason kb import-guidelines DIR` (or `icdreason scrape guidelines --pdf FILE`)")

#: The first line of :func:`tabular_notes`: where the text comes from.
TABULAR_LABEL = ("ICD-10-CM Tabular List notes (the knowledge base has no scraped symptom or guideline text for this "
                 "code)")

#: The note kinds shown, in the order a coder reads them, with their labels.
_NOTE_KINDS = (("inclusion_term", "Inclusion terms"), ("includes", "Includes"), ("excludes1", "Excludes1"),
               ("excludes2", "Excludes2"), ("code_first", "Code first"), ("use_additional_code", "Use additional code"),
               ("code_also", "Code also"), ("notes", "Note"))


def enrichment_source(kb: KnowledgeBase) -> str:
    """``"scraped"`` when the knowledge base has symptom descriptions or guideline passages, else ``"tabular"``
    (enrichment falls back to the Tabular List's notes; :data:`EMPTY_ENRICHMENT_NOTICE` says how to fill it)."""
    return "scraped" if kb.has_rows("symptoms") or kb.has_rows("guidelines") else "tabular"


def enrichment_notice(kb: KnowledgeBase) -> str | None:
    """:data:`EMPTY_ENRICHMENT_NOTICE` when the knowledge base has nothing scraped to enrich with, else None."""
    return EMPTY_ENRICHMENT_NOTICE if enrichment_source(kb) == "tabular" else None


def _joined(items: list[str]) -> str:
    """Note texts on one line: "; " between them, a space after one that introduces the next ("… using:")."""
    out = ""
    for item in items:
        item = item.strip().lstrip(",;").strip()  # "Code first: , if applicable, …" as the file has it
        out += (("" if not out else " " if out.endswith(":") else "; ") + item)
    return out


def tabular_notes(kb: KnowledgeBase, code: str | None) -> str | None:
    """The Tabular List's notes for ``code`` and its parents up to its category, as text: a first line saying where
    it comes from (:data:`TABULAR_LABEL`), then one block per code that has notes (``E11 Type 2 diabetes mellitus``
    and ``- Excludes1: …`` lines, the code's own first). None when the code is not in the code table or no code on
    its path has a note."""
    if not code or not is_well_formed(code) or kb.statuses([code])[0] not in ("billable", "header"):
        return None
    found = kb.notes_by_code()
    blocks = []
    for key in _prefixes(code):
        if key not in found:
            continue
        dotted_code, description, notes = found[key]
        lines = [f"- {label}: {_joined(notes[kind])}" for kind, label in _NOTE_KINDS if notes.get(kind)]
        if lines:
            blocks.append("\n".join([f"{dotted_code} {description}", *lines]))
    return "\n".join([TABULAR_LABEL, *blocks]) if blocks else None


# -- the record fields ----------------------------------------------------------------------------------------------
def enrichment_for(kb: KnowledgeBase, code: str | None, *, sources: tuple[str, ...] | None = None,
                   scraped: bool | None = None) -> dict:
    """The enrichment fields of a prediction record for ``code``.

    Keys: ``symptoms`` (text), ``symptoms_from`` (the dotted code it was found on), ``guideline`` (the most relevant
    passage: where it comes from on the first line, e.g. ``Chapter 9 › Hypertension › Hypertension with Heart
    Disease``, then its text) and ``guideline_section`` (its id, e.g. ``I.C.9.a``); each None when nothing applies.
    When neither is found (always, on a knowledge base without scraped rows), ``tabular_notes`` holds the Tabular
    List's notes for the code and its parents (:func:`tabular_notes`). ``enrichment_source`` says which: ``scraped``,
    ``tabular``, or None when nothing applies. ``scraped`` (default: :func:`enrichment_source`) skips the scraped
    tables when False.
    """
    out: dict = {"symptoms": None, "symptoms_from": None, "guideline": None, "guideline_section": None,
                 "tabular_notes": None, "enrichment_source": None}
    if not code:
        return out
    if scraped is None:
        scraped = enrichment_source(kb) == "scraped"
    if scraped:
        found = symptoms(kb, code, sources=sources)
        if found is not None:
            out["symptoms"] = found.text
            out["symptoms_from"] = found.from_code
        best = best_passage(guideline(kb, code))
        if best is not None:
            out["guideline"] = f"{best.where}\n{best.text}".strip() if best.text else best.where
            out["guideline_section"] = best.id
        if out["symptoms"] is not None or out["guideline"] is not None:
            out["enrichment_source"] = "scraped"
            return out
    out["tabular_notes"] = tabular_notes(kb, code)
    if out["tabular_notes"] is not None:
        out["enrichment_source"] = "tabular"
    return out


def prompt_texts(fields: dict) -> tuple[str, str]:
    """(symptom text, guideline text) for a prompt (``distill``'s teacher, the judge) from :func:`enrichment_for`'s
    fields: what was scraped, else the Tabular List's notes in the guideline slot (their first line names them), and
    a symptom slot that says none is stored rather than passing for a description."""
    symptoms = fields.get("symptoms") or "None: the knowledge base has no symptom description for this code."
    guideline = fields.get("guideline") or fields.get("tabular_notes") or \
        "None: the knowledge base has no guideline passage or Tabular List note for this code."
    return symptoms, guideline
