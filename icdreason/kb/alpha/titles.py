"""How an index title becomes the words a lookup needs: the word sets that must be present and the optional ones.

A title's first comma segment names the term; segments after it that are variants of it ("Infarct, infarction";
"femur, femoral") are alternatives, other segments are qualifiers ("traumatic" in "Fracture, traumatic"), read as
optional. "or" between single words is a choice ("atrial or auricular"); generic words ("region" in "sacral region")
are optional when other words are left; "- code as …" instructions are not title words.
"""

from __future__ import annotations

import re

from .words import GENERIC, is_connector, words

_CODE_AS = re.compile(r"\s+-\s+code (?:as|to)\b", re.IGNORECASE)
_PARENS = re.compile(r"\([^)]*\)")
_OR = re.compile(r"\bor\b")


def title_words(title: str) -> tuple[tuple[frozenset[str], ...], frozenset[str]]:
    """A title's required word sets and its optional words.

    The required sets are its first comma segment and the variants of it listed after commas ("Infarct,
    infarction"; "femur, femoral"), with "or" read as a choice ("atrial or auricular"). Other segments ("traumatic"
    in "Fracture, traumatic") and generic words ("region" in "sacral region") are optional."""
    title = _CODE_AS.split(title, maxsplit=1)[0]
    segments = [s for s in (p.strip() for p in _PARENS.sub(" ", title).split(",")) if s]
    if not segments or is_connector(segments[0]):
        return (), frozenset()
    first = words(segments[0], letters=True)
    if not first:
        return (), frozenset()
    alternatives = [_choices(segments[0])]
    optional: set[str] = set()
    for segment in segments[1:]:
        seg = words(segment, letters=True)
        if seg and any(a[:3] == b[:3] for a in seg for b in first):
            alternatives.append(_choices(segment))
        else:
            optional.update(seg)
    required = tuple(dict.fromkeys(_essential(c) for choice in alternatives for c in choice))
    dropped = {w for choice in alternatives for c in choice for w in c} - {w for r in required for w in r}
    return required, frozenset(optional | dropped)


def _choices(segment: str) -> list[frozenset[str]]:
    """A segment's word sets: one, or one per side of "or" when each side is one word ("atrial or auricular")."""
    sides = [words(side, letters=True) for side in _OR.split(segment)]
    if len(sides) > 1 and all(len(side) == 1 for side in sides):
        return [frozenset(side) for side in sides]
    return [frozenset(w for side in sides for w in side)]


def _essential(found: frozenset[str]) -> frozenset[str]:
    """The words of a set that must be present (generic words dropped unless nothing else is left)."""
    kept = found - GENERIC
    return kept if kept else found
