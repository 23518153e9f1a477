"""Look terms up in the Alphabetic Index the way a coder does: main term, then subterms, then "see" / "see also".

:class:`AlphabeticIndex` holds the index in memory (built from the knowledge base's ``index_*`` tables). Given the
normalised words of a short text (a query, or a window of a note around a word), it finds every main term whose
title words are all there, walks down the subterms whose words are there too (passing through connector subheadings
such as "with" and "due to"), follows "see" and "see also" references to their targets and goes on matching below
them, and reads the Neoplasm Table or the Table of Drugs where a reference sends it. Each path that ends at a code is
an :class:`IndexMatch`; the more words of the text a path accounts for, the better (a coder takes the most specific
entry that the documentation supports, and the main term's own code for an unspecified mention).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .parse import PATH_SEPARATOR
from .words import GENERIC, is_connector, stem, with_joined, words

#: How a cross-reference is written in a shown path.
SEE = " → "
_MAX_HOPS = 4
_WINDOW = 6
#: Words that choose a Table of Drugs column (intent); without them, poisoning is accidental (Guidelines I.C.19.e.5.b).
DRUG_INTENT = {3: frozenset(words("intentional suicide suicidal self harm selfharm overdosed deliberately")),
               4: frozenset(words("assault assaulted homicide")),
               5: frozenset(words("undetermined"))}
#: Words that choose a Neoplasm Table column when the path did not (behaviour).
NEOPLASM_BEHAVIOUR = [(3, frozenset(words("metastatic metastasis metastases secondary"))),
                      (4, frozenset(words("situ"))), (5, frozenset(words("benign"))),
                      (2, frozenset(words("malignant malignancy cancer carcinoma adenocarcinoma sarcoma")))]


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


def _first_alternative_words(title: str) -> tuple[tuple[frozenset[str], ...], frozenset[str]]:
    """A title's required word sets and its optional words.

    The required sets are its first comma segment and the variants of it listed after commas ("Infarct,
    infarction"; "femur, femoral"), with "or" read as a choice ("atrial or auricular"). Other segments ("traumatic"
    in "Fracture, traumatic") and generic words ("region" in "sacral region") are optional."""
    title = re.split(r"\s+-\s+code (?:as|to)\b", title, maxsplit=1, flags=re.IGNORECASE)[0]
    segments = [s for s in (p.strip() for p in re.sub(r"\([^)]*\)", " ", title).split(",")) if s]
    if not segments or is_connector(segments[0]):
        return (), frozenset()
    first = words(segments[0])
    if not first:
        return (), frozenset()
    alternatives = [_choices(segments[0])]
    optional: set[str] = set()
    for segment in segments[1:]:
        seg = words(segment)
        if seg and any(a[:3] == b[:3] for a in seg for b in first):
            alternatives.append(_choices(segment))
        else:
            optional.update(seg)
    required = tuple(dict.fromkeys(_essential(c) for choice in alternatives for c in choice))
    dropped = {w for choice in alternatives for c in choice for w in c} - {w for r in required for w in r}
    return required, frozenset(optional | dropped)


def _choices(segment: str) -> list[frozenset[str]]:
    """A segment's word sets: one, or one per side of "or" when each side has at most two words."""
    sides = [words(side) for side in re.split(r"\bor\b", segment)]
    if len(sides) > 1 and all(0 < len(side) <= 2 for side in sides):
        return [frozenset(side) for side in sides]
    return [frozenset(w for side in sides for w in side)]


def _essential(found: frozenset[str]) -> frozenset[str]:
    """The words of a set that must be present (generic words dropped unless nothing else is left)."""
    kept = found - GENERIC
    return kept if kept else found


class AlphabeticIndex:
    """The index, its tables and their cross-references in memory, with the lookup (see the module docstring)."""

    def __init__(self, terms: dict[str, list], xrefs: dict[str, list], cells: dict[str, list]):
        ids = terms["id"]
        self.size = max(ids) + 1 if ids else 0
        n = self.size
        self.source: list[str] = [""] * n
        self.parent: list[int | None] = [None] * n
        self.title: list[str] = [""] * n
        self.path: list[str] = [""] * n
        self.code: list[str | None] = [None] * n
        self.manif: list[str | None] = [None] * n
        self.required: list[tuple[frozenset[str], ...]] = [()] * n
        self.optional: list[frozenset[str]] = [frozenset()] * n
        self.children: list[list[int]] = [[] for _ in range(n)]
        self._qualifier: list[frozenset[str]] = [frozenset()] * n
        self.mains: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, source, parent, title, nemod, path, code, manif in sorted(zip(
                ids, terms["source"], terms["parent"], terms["title"], terms["nemod"], terms["path"], terms["code"],
                terms["manif"])):
            self.source[i], self.parent[i], self.title[i], self.path[i] = source, parent, title, path
            self.code[i], self.manif[i] = code, manif
            required, optional = _first_alternative_words(title)
            self.required[i] = required
            self._qualifier[i] = optional
            self.optional[i] = optional | frozenset(words(nemod or ""))
            if parent is None:
                for word in {w for alternative in required for w in alternative}:
                    self.mains[source][word].append(i)
            else:
                self.children[parent].append(i)
        self._qualify_sibling_mains()
        self.see: dict[int, list[tuple[int | None, str | None, int | None, str | None]]] = defaultdict(list)
        self.see_also: dict[int, list[tuple[int | None, str | None, int | None, str | None]]] = defaultdict(list)
        for term, kind, target, target_source, col, code in zip(xrefs["term"], xrefs["kind"], xrefs["target"],
                                                                xrefs["target_source"], xrefs["col"], xrefs["code"]):
            (self.see_also if kind == "see_also" else self.see)[term].append((target, target_source, col, code))
        self.cells: dict[int, dict[int, str]] = defaultdict(dict)
        for term, col, code in zip(cells["term"], cells["col"], cells["code"]):
            self.cells[term][col] = code
        self.neoplasm_root = next((i for i in range(n) if self.source[i] == "neoplasm" and self.parent[i] is None),
                                  None)

    def __len__(self) -> int:
        return self.size

    def _qualify_sibling_mains(self) -> None:
        """Main terms that share their first words ("Fracture, traumatic", "Fracture, pathological", "Fracture,
        burst"): the one with the most subterms is the general entry; the others are found only when the text also
        has their qualifier ("pathological")."""
        size = [0] * self.size
        for i in range(self.size - 1, -1, -1):
            parent = self.parent[i]
            if parent is not None:
                size[parent] += size[i] + 1
        for source, by_word in self.mains.items():
            groups: dict[frozenset[str], list[int]] = defaultdict(list)
            for main in {m for ms in by_word.values() for m in ms}:
                if self.required[main] and self._qualifier[main]:
                    groups[self.required[main][0]].append(main)
            for first, mains in groups.items():
                plain = [m for ms in by_word.values() for m in ms if self.required[m][:1] == (first,)]
                if len(set(plain)) < 2:
                    continue
                general = max(set(plain), key=lambda m: (size[m], -m))
                for main in mains:
                    if main != general:
                        self.required[main] = tuple(a | self._qualifier[main] for a in self.required[main])

    # -- lookup ------------------------------------------------------------------------------------------------------
    def lookup(self, text: str, *, sources: Iterable[str] = ("index", "eindex")) -> list[IndexMatch]:
        """Every index path the words of ``text`` support, best first, one per code."""
        return self.match(words(text), sources=sources, window=len(text))

    def match(self, tokens: list[str], *, sources: Iterable[str] = ("index",), window: int = _WINDOW,
              context: Collection[str] | None = None) -> list[IndexMatch]:
        """Index paths for normalised ``tokens`` (in text order), best first, one per code. A main term is matched
        where one of its words occurs; its words and its subterms' words must lie within ``window`` tokens of it.
        ``context`` (default: the window) are the words that choose drug-table intent and neoplasm behaviour."""
        found: dict[str, IndexMatch] = {}
        seen: set[tuple[int, int]] = set()
        for p, token in enumerate(tokens):
            for source in sources:
                mains = self.mains[source]
                candidates = mains.get(token, [])
                if p + 1 < len(tokens):
                    candidates = candidates + mains.get(token + tokens[p + 1], [])
                if not candidates:
                    continue
                near = with_joined(tokens[max(0, p - window): p + window + 1])
                for main in candidates:
                    if (main, p // max(window, 1)) in seen:
                        continue
                    seen.add((main, p // max(window, 1)))
                    hit = self._matched(main, near)
                    if hit is None:
                        continue
                    out: list[IndexMatch] = []
                    self._walk(main, near, hit, self.title[main], 0, out, context if context is not None else near)
                    for m in out:
                        best = found.get(m.code)
                        if best is None or m.score > best.score:
                            found[m.code] = m
        return sorted(found.values(), key=lambda m: (-m.score, len(m.path), m.code))

    def _matched(self, term: int, near: Collection[str]) -> frozenset[str] | None:
        """The largest of a term's required word sets found in ``near`` (None when none is)."""
        best = None
        for alternative in self.required[term]:
            if alternative <= near and (best is None or len(alternative) > len(best)):
                best = alternative
        return best

    def _walk(self, node: int, near: Collection[str], covered: frozenset[str], path: str, hops: int,
              out: list[IndexMatch], context: Collection[str], path_words: frozenset[str] = frozenset()) -> None:
        """Collect the matches at ``node`` (already matched) and below it."""
        path_words = path_words | {w for alternative in self.required[node] for w in alternative}
        for child in self.children[node]:
            if not self.required[child]:  # connector subheading: its subterms answer for it
                for grandchild in self.children[child]:
                    hit = self._matched(grandchild, near)
                    if hit is not None:
                        self._walk(grandchild, near, covered | hit,
                                   f"{path}{PATH_SEPARATOR}{self.title[child]}{PATH_SEPARATOR}{self.title[grandchild]}",
                                   hops, out, context, path_words)
                continue
            hit = self._matched(child, near)
            if hit is not None:
                self._walk(child, near, covered | hit, f"{path}{PATH_SEPARATOR}{self.title[child]}", hops, out,
                           context, path_words)
        score = len(covered) + 0.25 * len(self.optional[node] & set(near)) - 0.1 * hops
        code = self.code[node]
        if code:
            out.append(IndexMatch(code, node, path, self.source[node], covered, path_words, score,
                                  default=self.parent[node] is None, manif=self.manif[node]))
        if hops >= _MAX_HOPS:
            return
        for kind, refs in (("see", self.see.get(node, ())), ("see also", self.see_also.get(node, ()))):
            cost = 1 if kind == "see" else 3  # an optional reference is a weaker path than a mandatory one
            for target, target_source, col, ref_code in refs:
                shown = f"{path}{SEE}{kind} "
                if ref_code:
                    out.append(IndexMatch(ref_code, node, f"{shown}{ref_code}", self.source[node], covered,
                                          path_words, score - 0.1, default=False))
                elif target_source == "drug":
                    self._drug(near, covered, shown, hops + cost, out, context, col or 2)
                elif target_source == "neoplasm" and target is not None:
                    self._neoplasm(target, near, covered, shown, hops + cost, out, context, col)
                elif target is not None:
                    self._walk(target, near, covered, f"{shown}{self.path[target]}", hops + cost, out, context,
                               path_words)

    def _drug(self, near: Collection[str], covered: frozenset[str], shown: str, hops: int, out: list[IndexMatch],
              context: Collection[str], col: int) -> None:
        """A Table of Drugs row named in ``near``, in the column the reference and the intent words choose."""
        if col == 2:
            col = next((c for c, cue in DRUG_INTENT.items() if cue & set(context)), 2)
        mains = self.mains["drug"]
        for main in {m for w in near for m in mains.get(w, ())}:
            hit = self._matched(main, near)
            if hit is None:
                continue
            rows: list[tuple[int, frozenset[str], str]] = [(main, covered | hit, self.title[main])]
            for child in self.children[main]:
                child_hit = self._matched(child, near)
                if child_hit is not None:
                    rows.append((child, covered | hit | child_hit, f"{self.title[main]}{PATH_SEPARATOR}"
                                                                   f"{self.title[child]}"))
            for row, row_covered, title in rows:
                code = self.cells.get(row, {}).get(col)
                if code:
                    score = len(row_covered) - 0.1 * hops
                    out.append(IndexMatch(code, row, f"{shown}Table of Drugs › {title} [col {col}]", "drug",
                                          row_covered, frozenset(row_covered), score, default=False))

    def _neoplasm(self, start: int, near: Collection[str], covered: frozenset[str], shown: str, hops: int,
                  out: list[IndexMatch], context: Collection[str], col: int | None) -> None:
        """The Neoplasm Table below ``start``: the deepest site named in ``near``, in the behaviour's column."""
        if col is None:
            col = next((c for c, cue in NEOPLASM_BEHAVIOUR if cue & set(context)), 7)
        best: tuple[int, frozenset[str], str] = (start, covered, self.path[start])
        frontier = [best]
        while frontier:
            node, node_covered, node_path = frontier.pop()
            for child in self.children[node]:
                hit = self._matched(child, near)
                if hit is not None:
                    item = (child, node_covered | hit, f"{node_path}{PATH_SEPARATOR}{self.title[child]}")
                    frontier.append(item)
                    if len(item[1]) > len(best[1]) and self._cell(child, col):
                        best = item
        node, node_covered, node_path = best
        code = self._cell(node, col)
        if code:
            path_words = frozenset(w for t in node_path.split(PATH_SEPARATOR) for w in words(t))
            out.append(IndexMatch(code, node, f"{shown}{node_path} [{'col ' + str(col)}]", "neoplasm", node_covered,
                                  path_words, len(node_covered) - 0.1 * hops, default=False))

    def _cell(self, node: int | None, col: int) -> str | None:
        """A table row's code in ``col``, or its nearest ancestor's."""
        while node is not None:
            code = self.cells.get(node, {}).get(col)
            if code:
                return code
            node = self.parent[node]
        return None


def normalise(text: str) -> list[str]:
    """The tokens :meth:`AlphabeticIndex.match` expects, for a text."""
    return words(text)


__all__ = ["AlphabeticIndex", "IndexMatch", "normalise", "stem"]
