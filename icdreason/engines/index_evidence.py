"""The retriever's coder step: look the note's terms up in the ICD-10-CM Alphabetic Index.

For every kept sentence (negated mentions already removed, sections weighted as for BM25) the index is searched the
way a coder reads a phrase: a main term ("cellulitis") with the subterms around it ("left leg" → "lower limb"),
"see" references followed, the Neoplasm Table and the Table of Drugs read where the index sends the coder. Each path
that ends at a code is completed to a billable code with the sentence's own words (site and side: ``L03.11-`` →
``L03.116``), checked against the tabular list's Excludes1 notes, and weighed by the sentence's section weight, its
diagnostic cue ("admitted for", "consistent with") and how many of its words the path accounts for. A mention that
only names the main term gets the main term's own code: the index's default for an unspecified mention.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..kb.alpha.complete import sides
from ..kb.alpha.words import BREAK, COMMA, marked_words, with_joined, words

#: Sections whose mentions the index pass reads: where the reason for admission is written (history, social,
#: family, medication and allergy sections are context, not this admission's diagnosis; exam and results lines
#: describe findings, which the lexical pass weighs).
INDEX_SECTIONS = frozenset({"chief_complaint", "present_illness", "assessment", "preamble"})
#: Sections whose (positive) words are the record a subterm under "with" or a diabetes type may come from.
RECORD_SECTIONS = frozenset({"chief_complaint", "present_illness", "assessment", "preamble", "past_history"})
#: How much more a mention counts when the sentence states it as a diagnosis (the retriever's cue boost).
DIAGNOSTIC_BOOST = 2.0
#: What each word an index path accounts for beyond the first adds to a mention's strength (a longer entry is a
#: more specific code for the same condition, not a more important condition).
SPECIFICITY = 0.5
#: The best index paths of a clause that are completed and checked (the others are less specific readings).
MATCHES = 5
#: How much one more mention of the same code adds (the strongest mention counts in full).
REPEAT_SHARE = 0.25
#: An age ("74 year old", "4-month-old") is not the index's "Old" (an old myocardial infarction).
_AGE = re.compile(r"\b\d+\s*-?\s*(?:years?|yrs?|months?|weeks?|days?)\s*-?\s*old\b", re.IGNORECASE)


def _phrases(marks: list[str], breaks: tuple[str, ...]) -> list[list[str]]:
    """Split marked words at the given breaks. A coder reads a phrase: an index entry's words come from one clause
    (semicolons, colons and brackets end it); within a clause, commas mark the segments the matcher weighs."""
    out: list[list[str]] = [[]]
    for w in marks:
        if w in breaks:
            out.append([])
        elif w != BREAK:
            out[-1].append(w)
    return out


@dataclass
class IndexEvidence:
    """What the index says about one billable code in one note."""

    code: str           # undotted billable code
    strength: float     # the strongest mention's weight x words accounted for, plus a share of the others
    path: str           # the index path of the strongest mention
    sentence: str       # the sentence it came from
    section: str
    default: bool       # only the main term was named (its own code)
    mentions: int = 1


class NoteIndexer:
    """Index evidence for notes, over one knowledge base's Alphabetic Index (see the module docstring)."""

    def __init__(self, kb, in_scope: Callable[[str], bool]):
        self.index = kb.alphabetic_index
        self.completer = kb.index_completer
        self.kb = kb
        self.in_scope = in_scope

    @property
    def available(self) -> bool:
        return self.index is not None

    def evidence(self, sentences: Iterable[tuple[str, float, str, str, str]]) -> dict[str, IndexEvidence]:
        """Index evidence per billable code from (section, section weight, sentence, kept text with abbreviations
        spelled out, the text it states as a diagnosis) tuples. A mention whose words are stated as a diagnosis
        ("consistent with pneumonia") counts DIAGNOSTIC_BOOST times more."""
        found: dict[str, IndexEvidence] = {}
        if self.index is None:
            return found
        marked = [(section, weight, sentence, marked_words(_AGE.sub(" ", text)),
                   frozenset(words(stated)) if stated else frozenset())
                  for section, weight, sentence, text, stated in sentences]
        record: list[frozenset[str]] | tuple[frozenset[str], ...] = []
        for section, _, _, marks, _ in marked:
            if section in RECORD_SECTIONS:
                record.extend(frozenset(with_joined(phrase)) for phrase in _phrases(marks, (COMMA, BREAK)) if phrase)
        record = tuple(record)  # one object per note: the matcher reads its clauses once
        record_words = frozenset().union(*record) if record else frozenset()
        record_sides = sides(record_words)
        for section, weight, sentence, marks, stated in marked:
            if weight <= 0 or section not in INDEX_SECTIONS:
                continue
            sentence_words = with_joined([w for w in marks if w not in (COMMA, BREAK)])
            for clause in _phrases(marks, (BREAK,)):
                tokens: list[str] = []
                starts: list[int] = []
                start = 0
                for w in clause:
                    if w == COMMA:
                        start = len(tokens)
                    else:
                        tokens.append(w)
                        starts.append(start)
                self._clause(found, tokens, starts, sentence_words, record, record_words, record_sides, section,
                             weight, sentence, stated)
        return found

    def _clause(self, found: dict[str, IndexEvidence], tokens: list[str], starts: list[int],
                sentence_words: set[str], record: list[frozenset[str]], record_words: frozenset[str],
                record_sides: frozenset[str], section: str, weight: float, sentence: str,
                stated: frozenset[str]) -> None:
        """Add the evidence of one clause: its index matches, completed with its sentence's words (and the record's
        sides when the sentence names none) and checked in the tabular list with the record's words."""
        if not tokens:
            return
        context = sentence_words if sides(sentence_words) else sentence_words | record_sides
        for match in self.index.match(tokens, far=record, starts=starts, context=context | record_words)[:MATCHES]:
            code = self.completer.complete(match.code, context, match.path_words)
            if code is None or not self.in_scope(code):
                continue
            code, path = self.kb.verify_in_tabular(code, context | record_words, match.path, match.anchor)
            if not self.in_scope(code):
                continue
            strength = (weight * (DIAGNOSTIC_BOOST if match.covered & stated else 1.0)
                        * (1.0 + SPECIFICITY * (match.score - 1.0)))
            seen = found.get(code)
            if seen is None:
                found[code] = IndexEvidence(code, strength, path, sentence, section, match.default)
            elif strength > seen.strength:
                found[code] = IndexEvidence(code, strength + REPEAT_SHARE * seen.strength, path, sentence,
                                            section, match.default, seen.mentions + 1)
            else:
                seen.strength += REPEAT_SHARE * strength
                seen.mentions += 1
