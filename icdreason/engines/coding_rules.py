"""Coding rules the retriever applies to its ranked candidates, after the Alphabetic Index and BM25 have spoken.

- **Site and side agree with the note.** A code that names a body site (orbit, lower limb, radius …) the note never
  names, while the note names another, is unlikely (cellulitis of the leg is not orbital cellulitis); a code that
  names a side (right, left) the note contradicts is ruled out as the answer. Sites and sides are read from the
  chief complaint, present illness and assessment, where the reason for admission is written.
- **Sequencing.** When the best candidate's tabular notes say "code first" a condition the note states (I50 heart
  failure: "heart failure due to hypertension (I11.0)"), that code is the principal diagnosis; when another strong
  candidate says "use additional code" for the best one (E11.621 for L97.5-), it goes first.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..codes import dotted
from ..kb.alpha.complete import SIDES, sides
from ..kb.alpha.words import with_joined, words

#: Body sites by region; a description naming words of one region only agrees with a note naming that region.
#: Multi-word entries are matched written as one word ("lower limb" -> "lowerlimb").
SITE_REGIONS: dict[str, str] = {
    "lower_limb": "leg legs lower limb lower extremity thigh calf shin knee ankle foot feet heel hip femur femoral "
                  "tibia fibula malleolus bimalleolar trimalleolar patella toe",
    "upper_limb": "arm arms upper limb upper extremity forearm elbow wrist hand finger thumb shoulder humerus "
                  "radius ulna antecubital axilla",
    "eye": "eye eyes orbit orbital eyelid periorbital ocular conjunctiva cornea retina",
    "ear": "ear ears otitis auricle tympanic mastoid",
    "head_face": "face facial cheek scalp jaw nose nasal lip mouth",
    "neck": "neck",
    "trunk": "chest wall abdominal wall back buttock groin perineum trunk umbilicus",
}
_REGION_WORDS: dict[str, frozenset[str]] = {}
for _region, _text in SITE_REGIONS.items():
    _tokens = words(_text)
    _REGION_WORDS[_region] = frozenset(_tokens) | frozenset(a + b for a, b in zip(_tokens, _tokens[1:]))
#: A candidate naming a site of another region than the note's: factor.
SITE_CONFLICT = 0.5
#: A candidate naming a side the note contradicts: factor.
SIDE_CONFLICT = 0.25
#: A "use additional code" candidate goes before the best one only when it scores at least this share of it.
SEQUENCE_SHARE = 0.5


def regions(tokens: Collection[str]) -> frozenset[str]:
    """The body regions named by normalised words (joined neighbours included, see ``with_joined``)."""
    return frozenset(region for region, found in _REGION_WORDS.items() if found & set(tokens))


@dataclass
class NoteSites:
    """The sides and body regions the reason for admission names."""

    sides: frozenset[str]
    regions: frozenset[str]
    words: frozenset[str]

    @classmethod
    def read(cls, texts: Collection[str]) -> NoteSites:
        tokens = with_joined([w for text in texts for w in words(text)])
        return cls(sides(tokens), regions(tokens), frozenset(tokens))


_SITES_OF: dict[str, tuple[frozenset[str], frozenset[str]]] = {}


def sites_of(description: str) -> tuple[frozenset[str], frozenset[str]]:
    """The sides and body regions a code description names (memoised)."""
    found = _SITES_OF.get(description)
    if found is None:
        tokens = words(description)
        found = (frozenset(SIDES.intersection(tokens)), regions(with_joined(tokens)))
        if len(_SITES_OF) < 200_000:
            _SITES_OF[description] = found
    return found


def agreement(description: str, note: NoteSites) -> float:
    """The factor a candidate's score gets for its site and side words against the note's (1.0: no conflict)."""
    named, own = sites_of(description)
    factor = 1.0
    if named and note.sides and not named & note.sides:
        factor *= SIDE_CONFLICT
    if own and note.regions and not own & note.regions:
        factor *= SITE_CONFLICT
    return factor


def principal_first(ranked: list[tuple[str, float]], kb, note_words: Collection[str], describe,
                    in_scope=lambda code: True) -> tuple[list[tuple[str, float]], str | None]:
    """Reorder the candidates by the tabular list's sequencing notes; returns the list and why (None: unchanged).

    ``describe(code)`` gives a candidate's description; ``note_words`` are the note's normalised positive words;
    a code a "code first" note names that is not a candidate is completed with the note's words and put first
    when ``in_scope`` (undotted code) allows it."""
    if len(ranked) < 1:
        return ranked, None
    instructions = kb.instructions
    best, best_score = ranked[0]
    item = instructions.best(best, "code_first", note_words, words(describe(best)))
    if item is not None:
        for i, (code, score) in enumerate(ranked[1:], start=1):
            if item.names(code):
                reordered = [(code, best_score), *ranked[:i], *ranked[i + 1:]]
                return reordered, f"{best}: code first {item.text}"
        options = []
        for first, last in item.refs:  # the named code whose description the note supports best
            code = kb.index_completer.complete(first + "-", note_words) if first == last else None
            if code is not None and in_scope(code):
                options.append((-len(set(words(describe(code))) & set(note_words)), len(options), code))
        if options:
            code = min(options)[2]
            return [(dotted(code), best_score), *ranked[:-1]], f"{best}: code first {item.text}"
    for i, (code, score) in enumerate(ranked[1:], start=1):
        if score >= SEQUENCE_SHARE * best_score and instructions.sequenced_after(code, best):
            reordered = [(code, best_score), *ranked[:i], *ranked[i + 1:]]
            return reordered, f"{code} is sequenced before {best} (use additional code / code first)"
    return ranked, None
