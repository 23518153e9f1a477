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

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .charts import TableReading
from .found import IndexMatch
from .parse import PATH_SEPARATOR
from .titles import title_words
from .words import with_joined, words

#: How a cross-reference is written in a shown path.
SEE = " → "
_MAX_HOPS = 4
_WINDOW = 8
#: Credit for a word a subterm takes from elsewhere in the record (see ``match``) instead of from near the main term.
FAR_CREDIT = 0.3
@dataclass(frozen=True)
class _Walk:
    """What one walk down the index reads: the words near the main term, those plus the record's (``both``), the
    words that choose table columns, and where matches go."""

    near: frozenset[str]                # the words around the main term
    own: frozenset[str]                 # those of its own comma segment (later segments' words count half)
    both: frozenset[str]                # near and every far clause together (a quick test before the clauses)
    far: tuple[frozenset[str], ...]     # the record's clauses
    context: Collection[str]
    out: list


def _segment_ends(starts: list[int] | None, n: int) -> list[int]:
    """For each token, where its comma segment ends (``n`` for the last)."""
    if not starts:
        return [n] * n
    ends = [n] * n
    for q in range(n - 2, -1, -1):
        ends[q] = q + 1 if starts[q + 1] != starts[q] else ends[q + 1]
    return ends


class AlphabeticIndex(TableReading):
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
        self._children_by_word: dict[int, tuple[dict[str, list[int]], list[int], frozenset[int]]] = {}
        self._record_key: object = None
        self._record_value: tuple[frozenset[str], tuple[frozenset[str], ...]] = (frozenset(), ())
        self._far_memo: dict[int, frozenset[str] | None] = {}
        self._far_children: dict[int, list[int]] = {}
        self._qualifier: list[frozenset[str]] = [frozenset()] * n
        self.mains: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        read_title: dict[str, tuple[tuple[frozenset[str], ...], frozenset[str]]] = {}
        read_nemod: dict[str, frozenset[str]] = {}
        for i, source, parent, title, nemod, path, code, manif in sorted(zip(
                ids, terms["source"], terms["parent"], terms["title"], terms["nemod"], terms["path"], terms["code"],
                terms["manif"])):
            self.source[i], self.parent[i], self.title[i], self.path[i] = source, parent, title, path
            self.code[i], self.manif[i] = code, manif
            got = read_title.get(title)
            if got is None:
                got = read_title[title] = title_words(title)
            required, optional = got
            self.required[i] = required
            self._qualifier[i] = optional
            modifiers = read_nemod.get(nemod or "")
            if modifiers is None:
                modifiers = read_nemod[nemod or ""] = frozenset(words(nemod or ""))
            self.optional[i] = optional | modifiers
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
        for by_word in self.mains.values():
            groups: dict[frozenset[str], list[int]] = defaultdict(list)
            for main in {m for ms in by_word.values() for m in ms}:
                if self.required[main]:
                    groups[self.required[main][0]].append(main)
            for mains in groups.values():
                if len(mains) < 2:
                    continue
                general = max(mains, key=lambda m: (size[m], -m))
                for main in mains:
                    if main != general and self._qualifier[main]:
                        self.required[main] = tuple(a | self._qualifier[main] for a in self.required[main])

    # -- lookup ------------------------------------------------------------------------------------------------------
    def lookup(self, text: str, *, sources: Iterable[str] = ("index", "eindex")) -> list[IndexMatch]:
        """Every index path the words of ``text`` support, best first, one per code."""
        return self.match(words(text, letters=True), sources=sources, window=len(text))

    def match(self, tokens: list[str], *, sources: Iterable[str] = ("index",), window: int = _WINDOW,
              context: Collection[str] | None = None, far: Iterable[Collection[str]] = (),
              starts: list[int] | None = None) -> list[IndexMatch]:
        """Index paths for normalised ``tokens`` (in text order), best first, one per code.

        A main term is matched where one of its words occurs; its words and its subterms' words must lie within
        ``window`` tokens of it, and not before ``starts[p]`` (the start of the comma segment of the word at ``p``:
        "yellow-green sputum, fevers" is no yellow fever, "major depressive disorder, recurrent, severe" is one
        diagnosis). ``far`` are the record's other clauses: a subterm under "with" or a "type" subterm may take its
        words from one of them, for less credit (FAR_CREDIT): the index presumes conditions it lists under "with" to
        be linked (Guidelines I.A.15), and a diabetes type stated once applies to every mention. ``context``
        (default: the window and ``far``) are the words that choose drug-table intent and neoplasm behaviour."""
        found: dict[str, IndexMatch] = {}
        seen: set[tuple[int, int]] = set()
        far_words, far = self._record(far)
        windows: dict[tuple[int, int], frozenset[str]] = {}

        def span(lo: int, hi: int) -> frozenset[str]:
            got = windows.get((lo, hi))
            if got is None:
                got = windows[(lo, hi)] = frozenset(with_joined(tokens[lo:hi]))
            return got

        ends = _segment_ends(starts, len(tokens))
        source_mains = [self.mains[source] for source in sources]
        for p, token in enumerate(tokens):
            for mains in source_mains:
                candidates = mains.get(token, [])
                if p + 1 < len(tokens):
                    joined = mains.get(token + tokens[p + 1])
                    if joined:
                        candidates = candidates + joined
                if not candidates:
                    continue
                lo = max(0, p - window, starts[p] if starts else 0)
                hi = min(len(tokens), p + window + 1)
                near = span(lo, hi)
                own = span(lo, min(hi, ends[p])) if starts else near
                for main in candidates:
                    if (main, p // max(window, 1)) in seen:
                        continue
                    seen.add((main, p // max(window, 1)))
                    hit = self._matched(main, near)
                    if hit is None:
                        continue
                    out: list[IndexMatch] = []
                    both = near | far_words
                    walk = _Walk(near, own, both, far, context if context is not None else both, out)
                    self._walk(main, walk, hit, self.title[main], 0)
                    for m in out:
                        best = found.get(m.code)
                        if best is None or m.score > best.score:
                            found[m.code] = m
        return sorted(found.values(), key=lambda m: (-m.score, len(m.path), m.code))

    def root(self, term: int) -> int:
        """The main term a term sits under."""
        while self.parent[term] is not None:
            term = self.parent[term]
        return term

    def _matched(self, term: int, near: Collection[str]) -> frozenset[str] | None:
        """The largest of a term's required word sets found in ``near`` (None when none is)."""
        best = None
        for alternative in self.required[term]:
            if alternative <= near and (best is None or len(alternative) > len(best)):
                best = alternative
        return best

    def _child_index(self, node: int) -> tuple[dict[str, list[int]], list[int], frozenset[int]]:
        """A term's subterms by each of their words, its connector subheadings, and its "type …" subterms (built on
        first use and kept)."""
        found = self._children_by_word.get(node)
        if found is None:
            by_word: dict[str, list[int]] = defaultdict(list)
            connectors, typed = [], set()
            for child in self.children[node]:
                if not self.required[child]:
                    connectors.append(child)
                    continue
                for word in {w for alternative in self.required[child] for w in alternative}:
                    by_word[word].append(child)
                if self.title[child][:4].lower() == "type":
                    typed.add(child)
            found = self._children_by_word[node] = (dict(by_word), connectors, frozenset(typed))
        return found

    @staticmethod
    def _candidates(by_word: dict[str, list[int]], present: Collection[str]) -> list[int]:
        """The subterms with at least one word in ``present``, in document order."""
        if len(by_word) < len(present):
            found = {c for word, children in by_word.items() if word in present for c in children}
        else:
            found = {c for word in present for c in by_word.get(word, ())}
        return sorted(found)

    def _record(self, far: Iterable[Collection[str]]) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
        """The record's words and clauses. The same record object (one note's) is read once: what its clauses
        match is kept until another record comes (so a lookup is not thread-safe across records)."""
        if far is not self._record_key:
            clauses = tuple(frozenset(c) for c in far if c)
            self._record_key = far
            self._record_value = (frozenset().union(*clauses) if clauses else frozenset(), clauses)
            self._far_memo = {}
            self._far_children = {}
        return self._record_value

    def _far_matched(self, term: int, walk: _Walk) -> frozenset[str] | None:
        """A term's largest word set found whole in one of the record's clauses (None when none is)."""
        if term in self._far_memo:
            return self._far_memo[term]
        best = None
        for alternative in self.required[term]:
            if (alternative <= walk.both and (best is None or len(alternative) > len(best))
                    and any(alternative <= clause for clause in walk.far)):
                best = alternative
        self._far_memo[term] = best
        return best

    def _far_candidates(self, node: int, walk: _Walk) -> list[int]:
        """The subterms of ``node`` that one of the record's clauses has all the words of."""
        found = self._far_children.get(node)
        if found is None:
            record_words = walk.both - walk.near if not walk.far else frozenset().union(*walk.far)
            found = [c for c in self._candidates(self._child_index(node)[0], record_words)
                     if self._far_matched(c, walk) is not None]
            self._far_children[node] = found
        return found

    def _walk(self, node: int, walk: _Walk, covered: frozenset[str], path: str, hops: int,
              path_words: frozenset[str] = frozenset(), linked: bool = False) -> None:
        """Collect the matches at ``node`` (already matched) and below it. ``linked``: below a "with"."""
        path_words = path_words | {w for alternative in self.required[node] for w in alternative}
        by_word, connectors, typed = self._child_index(node)
        children = self._candidates(by_word, walk.near)
        if linked or typed:
            extra = [c for c in self._far_candidates(node, walk) if linked or c in typed]
            children = sorted(set(children).union(extra)) if extra else children
        for child in children:
            hit = self._matched(child, walk.near)
            if hit is None and (linked or child in typed):
                hit = self._far_matched(child, walk)
            if hit is not None:
                self._walk(child, walk, covered | hit, f"{path}{PATH_SEPARATOR}{self.title[child]}", hops,
                           path_words, linked)
        for connector in connectors:  # subheadings such as "with", "due to": their subterms answer for them
            with_ = self.title[connector].lower() == "with"
            grandchildren = self._candidates(self._child_index(connector)[0], walk.near)
            if with_:
                extra = self._far_candidates(connector, walk)
                grandchildren = sorted(set(grandchildren).union(extra)) if extra else grandchildren
            for grandchild in grandchildren:
                hit = self._matched(grandchild, walk.near)
                if hit is None and with_:
                    hit = self._far_matched(grandchild, walk)
                if hit is not None:
                    self._walk(grandchild, walk, covered | hit,
                               f"{path}{PATH_SEPARATOR}{self.title[connector]}{PATH_SEPARATOR}{self.title[grandchild]}",
                               hops, path_words, with_)
        near = walk.near
        own = walk.own
        score = (sum(1.0 if w in own else 0.5 if w in near else FAR_CREDIT for w in covered)
                 + 0.25 * len(self.optional[node] & near)
                 - 0.1 * hops)
        code = self.code[node]
        out = walk.out
        if code:
            out.append(IndexMatch(code, node, path, self.source[node], covered, path_words, score,
                                  default=self.parent[node] is None, manif=self.manif[node],
                                  anchor=self.required[self.root(node)]))
        if hops >= _MAX_HOPS:
            return
        for kind, refs in (("see", self.see.get(node, ())), ("see also", self.see_also.get(node, ()))):
            cost = 1 if kind == "see" else 3  # an optional reference is a weaker path than a mandatory one
            for target, target_source, col, ref_code in refs:
                if (kind == "see also" and code and target is not None and target_source != "neoplasm"
                        and self._matched(target, near) is None):
                    continue  # a term with its own code sends the coder on only when the text names the other term
                shown = f"{path}{SEE}{kind} "
                if ref_code:
                    out.append(IndexMatch(ref_code, node, f"{shown}{ref_code}", self.source[node], covered,
                                          path_words, score - 0.1, default=False))
                elif target_source == "drug":
                    self._drug(near, covered, shown, hops + cost, out, walk.context, col or 2)
                elif target_source == "neoplasm" and target is not None:
                    self._neoplasm(target, near, covered, shown, hops + cost, out, walk.context, col)
                elif target is not None:
                    self._walk(target, walk, covered, f"{shown}{self.path[target]}", hops + cost, path_words)
