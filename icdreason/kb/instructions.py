"""The Tabular List's instructional notes as a coder applies them after the index: "Excludes1", "code first",
"use additional code".

Each note item ("heart failure due to hypertension (I11.0)") is read into its words and the codes it names (a code,
a header with ``-``, or a range ``O00-O07``). An item *applies* to a text when the text has its words: all of them,
or all but one when the item has three or more words that the code's own description does not already say (the
words that make the difference). Items declared on a category apply to every code below it.

- ``Excludes1`` says "not coded here": when an item applies, the code it names is coded instead (``M54.16``
  radiculopathy, lumbar region: "radiculopathy with lumbar and other intervertebral disc disorder (M51.1-)").
- ``code first`` on a code says another condition is sequenced before it ("heart failure due to hypertension
  (I11.0)" on I50): when the item applies, the code it names is the principal diagnosis.
- ``use additional code`` on a code says it is sequenced first and the code named goes after it (E11.621: "code to
  identify site of ulcer (L97.4-, L97.5-)").
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection
from typing import NamedTuple

from ..codes import normalize
from .alpha.words import CONNECTORS, GENERIC, words

_CODE = r"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?"
_REF = re.compile(rf"\b({_CODE})\s*-\s*({_CODE})\b|\b({_CODE})")
#: Words of a note item that never make the difference.
_FILLER = frozenset(words("code codes identify such as any associated underlying condition if applicable other "
                          "specified unspecified type disease disorder")) | CONNECTORS | GENERIC
KINDS = ("excludes1", "code_first", "use_additional_code")


class NoteItem(NamedTuple):
    """One item of an instructional note."""

    declared_on: str                # the code (undotted) the note is written under
    kind: str                       # excludes1 | code_first | use_additional_code
    text: str
    words: frozenset[str]           # normalised words without the code references and fillers
    refs: tuple[tuple[str, str], ...]   # (first, last) undotted code prefixes; first == last for one code or header

    def names(self, code: str) -> bool:
        """Whether a code (dotted or not) falls under one of the codes or ranges the item names."""
        code_nodot = normalize(code)
        for first, last in self.refs:
            if first == last:
                if code_nodot.startswith(first):
                    return True
            elif first[:3] <= code_nodot[:3] <= last[:3]:
                return True
        return False


def _refs(text: str) -> tuple[tuple[str, str], ...]:
    """The codes an item names: ("I110", "I110") for I11.0 or I11.-, ("O00", "O07") for O00-O07."""
    out = []
    for first, last, single in _REF.findall(text):
        out.append((normalize(first), normalize(last)) if first else (normalize(single), normalize(single)))
    return tuple(out)


class Instructions:
    """Every Excludes1, code-first and use-additional item of the tabular list, by the code it is declared on."""

    def __init__(self, rows: Collection[tuple[str, str, str]]):
        self.items: dict[str, list[NoteItem]] = defaultdict(list)
        self._on: dict[tuple[str, str], list[NoteItem]] = {}
        self._words: dict[tuple[str, str], frozenset[str]] = {}
        for code, kind, text in rows:
            refs = _refs(text)
            if not refs:
                continue
            plain = _REF.sub(" ", text)
            key = normalize(code)
            self.items[key].append(NoteItem(key, kind, text, frozenset(words(plain)) - _FILLER, refs))

    def deciding_words(self, code: str, kind: str) -> frozenset[str]:
        """Every word of the items of ``kind`` on a code or above it (memoised): a text with none of them has no
        item that applies."""
        key = (normalize(code), kind)
        found = self._words.get(key)
        if found is None:
            found = frozenset().union(*(i.words for i in self.on(code, kind)))
            if len(self._words) < 100_000:
                self._words[key] = found
        return found

    def on(self, code: str, kind: str) -> list[NoteItem]:
        """Items of ``kind`` declared on a code or on any code above it (nearest first; memoised)."""
        key = normalize(code)
        found = self._on.get((key, kind))
        if found is None:
            found = []
            for n in range(len(key), 2, -1):
                found.extend(i for i in self.items.get(key[:n], ()) if i.kind == kind)
            if len(self._on) < 100_000:
                self._on[(key, kind)] = found
        return found

    @staticmethod
    def missing(item: NoteItem, context: Collection[str], own: Collection[str] = ()) -> int | None:
        """How many of an item's deciding words (those ``own`` does not already say) ``context`` lacks; None when
        the item does not apply (it has no deciding word in ``context``, or lacks more than it may)."""
        deciding = item.words - set(own)
        if not deciding:
            return None
        present = len(deciding & set(context))
        lacking = len(deciding) - present
        if present == 0 or lacking > (1 if len(deciding) >= 3 else 0):
            return None
        return lacking

    def best(self, code: str, kind: str, context: Collection[str], own: Collection[str] = (),
             anchor: Collection[frozenset[str]] = ()) -> NoteItem | None:
        """The item of ``kind`` on ``code`` (or above it) that applies best to ``context``: fewest deciding words
        lacking, then most words, then nearest declaration. With ``anchor`` (word sets, e.g. a main term's
        variants), only items whose words include one of them."""
        ranked = []
        for order, item in enumerate(self.on(code, kind)):
            if anchor and not any(a <= item.words for a in anchor):
                continue
            lacking = self.missing(item, context, own)
            if lacking is not None:
                ranked.append((lacking, -len(item.words), order, item))
        return min(ranked)[3] if ranked else None

    def sequenced_after(self, first: str, then: str) -> bool:
        """True when ``first`` has a "use additional code" note naming ``then``, or ``then`` a "code first" note
        naming ``first`` (so ``first`` is the principal diagnosis of the two)."""
        a, b = normalize(first), normalize(then)
        return (any(i.names(b) for i in self.on(a, "use_additional_code"))
                or any(i.names(a) for i in self.on(b, "code_first")))
