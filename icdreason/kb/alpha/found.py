"""What a lookup in the Alphabetic Index finds: a path through the index that ends at a code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexMatch:
    """One path through the index that ends at a code."""

    code: str                   # as printed: 'I21.9', 'L03.11-' (more characters needed), a table cell 'T40.1X1'
    term: int                   # the term (or table row) that gave the code
    path: str                   # 'Attack, attacks › heart → Infarct, infarction › myocardium, myocardial'
    source: str                 # index | eindex | neoplasm | drug
    covered: frozenset[str]     # the words of the text the path's titles account for
    path_words: frozenset[str]  # every word of the titles along the path (site words for completing the code)
    score: float
    default: bool               # the main term's own code: no subterm matched (an unspecified mention)
    manif: str | None = None    # manifestation code printed in brackets after the code
    anchor: tuple[frozenset[str], ...] = ()  # the word sets of the main term the code sits under (the condition)
