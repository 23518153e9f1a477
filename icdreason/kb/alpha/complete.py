"""Complete an index code to a billable code the way a coder does in the Tabular List.

An index code with a trailing ``-`` (``L03.11-``, ``S72.00-``, ``C34.1-``) or a table cell such as ``T40.1X1`` needs
more characters. Among the billable codes below it, the one whose description's own words (those the header does not
have) best agree with the words at hand wins: first the words of the index path that led there ("lower limb"), then
the words of the note or query ("left"). A side (right / left / bilateral) the context contradicts rules a code out;
one the context does not state loses to a code without a side (or for an unspecified side).
Without a deciding word the unspecified child wins, then the shortest. Fractures default to displaced (Guidelines
I.C.19.c.1); the 7th character is the initial encounter (``A``, or ``B`` for an open fracture when the context says
"open").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection
from typing import TYPE_CHECKING

from ...codes import normalize
from .words import words

if TYPE_CHECKING:
    from ..validation import CodeIndex

SIDES = frozenset({"right", "left", "bilateral"})
_ENCOUNTER = re.compile(r",\s*(initial|subsequent) encounter.*$|,\s*sequela.*$", re.IGNORECASE)
_WITH = re.compile(r"\bwith\b(?!out)([^,;]*)", re.IGNORECASE)
_WITHOUT = re.compile(r"\bwithout\b[^,;]*", re.IGNORECASE)
#: Words of a "with" qualifier that do not make it documented.
_VAGUE = frozenset({"unspecified", "specified", "complication"})


def sides(context: Collection[str]) -> frozenset[str]:
    """The sides a context names (right, left, bilateral; "both" counts as bilateral)."""
    found = SIDES.intersection(context)
    if "both" in context:
        found = found | {"bilateral"}
    return frozenset(found)


def side_conflict(description_words: Collection[str], context_sides: frozenset[str]) -> bool:
    """True when a code names a side and the context names sides, none of them that one."""
    named = SIDES.intersection(description_words)
    return bool(named and context_sides and not named & context_sides)


class Completer:
    """Finds the billable code below an index code, over the knowledge base's in-memory code index."""

    def __init__(self, code_index: CodeIndex):
        self.ci = code_index
        self._words: dict[int, tuple[frozenset[str], bool]] = {}

    def _described(self, i: int) -> tuple[frozenset[str], bool, tuple[frozenset[str], ...], frozenset[str]]:
        """A code's description words without the encounter part, whether it says "unspecified", the words of each
        of its "with …" qualifiers, and the words that say something (not "unspecified", not "without …": the
        default a coder assumes)."""
        got = self._words.get(i)
        if got is None:
            text = _ENCOUNTER.sub("", self.ci.descriptions[i])
            found = words(text)
            quals = tuple(frozenset(words(m.group(1))) for m in _WITH.finditer(text))
            saying = frozenset(words(_WITHOUT.sub(" ", text))) - _VAGUE - {"unspecified", "part"}
            got = self._words[i] = (frozenset(found), "unspecified" in found, quals, saying)
        return got

    def description_words(self, position: int) -> frozenset[str]:
        """The normalised words of a code's description (without its encounter part; memoised)."""
        return self._described(position)[0]

    def billable_below(self, code_nodot: str) -> list[int]:
        """Positions of the billable codes that start with ``code_nodot`` (itself included)."""
        nodot = self.ci.nodot
        start = bisect.bisect_left(nodot, code_nodot)
        out = []
        for i in range(start, len(nodot)):
            if not nodot[i].startswith(code_nodot):
                break
            if self.ci.billable[i]:
                out.append(i)
        return out

    def complete(self, raw: str, context: Collection[str] = (), path_words: Collection[str] = ()) -> str | None:
        """The billable (undotted) code for an index code, or None when the tabular has nothing below it.

        ``context`` are the normalised words around the mention (or the query), ``path_words`` those of the index
        path that led to the code."""
        base = normalize(raw.rstrip("-").rstrip("."))
        i = self.ci.position.get(base)
        if i is not None and self.ci.billable[i]:
            return base
        below = self.billable_below(base)
        if not below:
            return None
        context = set(context)
        context_sides = sides(context)
        head = self.ci.position.get(base)
        head_words = self._described(head)[0] if head is not None else frozenset()
        path = set(path_words)
        seventh = "B" if "open" in context else "A"
        best, best_key = None, None
        for j in below:
            code = self.ci.nodot[j]
            if len(code) == 7 and len(base) < 7 and code[-1] not in (seventh, "A"):
                continue  # not an initial encounter
            described, unspecified, quals, saying = self._described(j)
            if side_conflict(described, context_sides):
                continue
            if not context_sides and SIDES.intersection(described):
                score_side = -2.5  # a side nobody stated: the code without one (or for an unspecified side) wins
            else:
                score_side = 0.0
            own = described - head_words
            score = 2 * len(own & path) + len(own & context) + score_side
            score -= 0.5 * sum(1 for q in quals if not (q - _VAGUE) & context)  # "with X" that X is not said
            score -= 0.1 * len((saying - head_words) - context - path)  # more than anyone said
            if "displaced" in own and not {"displaced", "nondisplaced"} & context:
                score += 0.5  # a fracture not said to be displaced or not is coded displaced
            key = (-score, not unspecified, code[-1] != seventh if len(code) == 7 else False, len(code), code)
            if best_key is None or key < best_key:
                best, best_key = code, key
        return best
