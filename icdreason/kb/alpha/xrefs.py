"""Resolve the index's cross-references ("see", "see also", "see category") to the terms or codes they name.

A reference is a comma-separated path: "Infarct, myocardium" or "Fracture, femur, upper end, neck". Its first
segment names a main term by its first alternative ("Infarct" for "Infarct, infarction"), later segments name subterms
the same way; a title may itself contain commas ("femur, femoral"), so each step tries to consume one to three
segments and backtracks. Matching ignores case, parenthesised words, "NEC"/"NOS" and plural endings. Instructions
are not titles: "by site", "by type", "by drug" segments are dropped (the lookup continues below the term reached with
the words of the query). Special targets:

- ``condition`` (alone or first): no target; the coder looks up the condition's own main term;
- ``Neoplasm, <behaviour>, by site`` and ``Table of Neoplasms``: the Neoplasm Table, in the column of the behaviour
  (2 malignant primary, 3 secondary, 4 in situ, 5 benign, 6 uncertain, 7 unspecified);
- ``Table of Drugs and Chemicals, …``: the Table of Drugs (column 2 poisoning, 6 adverse effect, 7 underdosing);
- ``category X`` / ``subcategory X`` (and the ``seecat``/``subcat`` elements): a code to complete in the tabular.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from .parse import IndexFile

XREF_COLUMNS = ("term", "kind", "target", "target_source", "col", "code")

_PARENS = re.compile(r"\([^)]*\)")
_NOISE = re.compile(r"\b(nec|nos)\b")
_CATEGORY = re.compile(r"^(?:sub)?categor(?:y|ies)\s+([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{0,4})?)-?", re.IGNORECASE)
_INSTRUCTION = re.compile(r"\bby\s+(site|type|drug|substance|region|agent|degree|body|cause|device|location)\b|"
                          r"\bif known\b")
_CONNECTORS = frozenset({"with", "due to", "in", "in due to"})
NEOPLASM_COLUMNS = {"malignant": 2, "secondary": 3, "in situ": 4, "benign": 5, "uncertain": 6, "unspecified": 7}
DRUG_COLUMNS = {"poisoning": 2, "adverse effect": 6, "underdosing": 7}


def key(text: str) -> str:
    """A title or reference segment as compared: lower case, no parentheses, no NEC/NOS, singular words."""
    text = _NOISE.sub(" ", _PARENS.sub(" ", text.lower()))
    words = []
    for word in re.findall(r"[a-z0-9][a-z0-9'\-]*", text):
        if len(word) > 3 and word.endswith("ies"):
            word = word[:-3] + "y"
        elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        words.append(word.replace("'", ""))
    return " ".join(words)


def _alternatives(title: str) -> set[str]:
    """The keys a title answers to: the whole title, its first comma-separated part and the later parts that are
    variants of it ("Infarct, infarction"; "femur, femoral"), not qualifiers ("sylvatic, yellow" is not "yellow")."""
    parts = [p for p in (key(s) for s in title.split(",")) if p]
    if not parts:
        return {key(title)}
    first = parts[0].split()
    variants = {p for p in parts[1:] if any(a[:3] == b[:3] for a in p.split() for b in first)}
    return {key(title), parts[0], *variants}


class _Tree:
    """Main terms by key and children by parent, over every file of one release."""

    def __init__(self, files: Sequence[IndexFile]):
        self.mains: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.children: dict[int, list[int]] = defaultdict(list)
        self.keys: dict[int, set[str]] = {}
        self.source: dict[int, str] = {}
        self.neoplasm_root: int | None = None
        self._keyed: dict[int, dict[str, list[int]]] = {}
        for f in files:
            t = f.terms
            for term_id, parent, title in zip(t["id"], t["parent"], t["title"]):
                self.keys[term_id] = _alternatives(title)
                self.source[term_id] = f.kind
                if parent is None:
                    first = key(title.split(",")[0])
                    self.mains[f.kind][first].append(term_id)
                    self.mains[f.kind][key(title)].append(term_id)
                    if f.kind == "neoplasm" and self.neoplasm_root is None:
                        self.neoplasm_root = term_id
                else:
                    self.children[parent].append(term_id)

    def walk(self, parents: Iterable[int], segments: list[str]) -> int | None:
        """The first term reached below ``parents`` by consuming every segment (backtracking), else None."""
        parents = list(parents)
        for take in (1, 2, 3):
            if take > len(segments):
                break
            wanted, rest = key(", ".join(segments[:take])), segments[take:]
            for parent in parents:
                for child in self._by_key(parent).get(wanted, ()):
                    if not rest:
                        return child
                    found = self.walk([child], rest)
                    if found is not None:
                        return found
        return None

    def _by_key(self, parent: int) -> dict[str, list[int]]:
        """A term's children by key, then the grandchildren under connector subheadings ("with", "due to", "in")
        that a reference may skip."""
        found = self._keyed.get(parent)
        if found is None:
            found = self._keyed[parent] = defaultdict(list)
            kids = self.children.get(parent, [])
            for kid in kids:
                for k in self.keys[kid]:
                    found[k].append(kid)
            for kid in kids:
                if self.keys[kid] & _CONNECTORS:
                    for grandchild in self.children.get(kid, []):
                        for k in self.keys[grandchild]:
                            found[k].append(grandchild)
        return found

    def main_terms(self, source: str, segment: str) -> list[int]:
        return list(dict.fromkeys(self.mains[source].get(key(segment), [])))


def resolve(text: str, tree: _Tree, source: str) -> tuple[int | None, str | None, int | None, str | None]:
    """(target term, target source, table column, code) for one reference text; all None when unresolved."""
    text = text.strip().rstrip(",").strip()
    lowered = " ".join(text.lower().split())
    category = _CATEGORY.match(text)
    if category:
        return None, None, None, category.group(1).upper() + "-"
    if lowered.startswith("condition"):
        return None, None, None, None
    if lowered.startswith("table of drugs"):
        col = next((c for word, c in DRUG_COLUMNS.items() if word in lowered), 2)
        return None, "drug", col, None
    if lowered.startswith(("neoplasm", "table of neoplasms")) and tree.neoplasm_root is not None:
        segments = [s.strip() for s in text.split(",")[1:] if s.strip()]
        behaviour = segments[0].lower() if segments else ""
        col = next((c for word, c in NEOPLASM_COLUMNS.items() if behaviour.startswith(word)), None)
        if col is not None:
            segments = segments[1:]
        sites = [s for s in segments if not _INSTRUCTION.search(s.lower())]
        target = tree.walk([tree.neoplasm_root], sites) if sites else tree.neoplasm_root
        return target if target is not None else tree.neoplasm_root, "neoplasm", col, None
    segments = [s.strip() for s in text.split(",") if s.strip() and not _INSTRUCTION.search(s.lower())]
    if not segments:
        return None, None, None, None
    for take in (3, 2, 1):  # a main term's first alternative can itself contain commas
        if take > len(segments):
            continue
        mains = tree.main_terms(source, ", ".join(segments[:take]))
        if take == 1 and not mains and source == "eindex":
            mains = tree.main_terms("index", segments[0])
        if not mains:
            continue
        if take == len(segments):
            return mains[0], tree.source[mains[0]], None, None
        found = tree.walk(mains, segments[take:])
        if found is not None:
            return found, tree.source[found], None, None
    return None, None, None, None


def resolve_all(files: Sequence[IndexFile]) -> tuple[dict[str, list], dict[str, int]]:
    """Every cross-reference of ``files`` resolved: rows for ``index_xrefs`` and the unresolved count per source."""
    tree = _Tree(files)
    rows: dict[str, list] = {k: [] for k in XREF_COLUMNS}
    unresolved: dict[str, int] = defaultdict(int)
    for f in files:
        t = f.terms
        for term_id, see, see_also, subcat, seecat in zip(t["id"], t["see"], t["see_also"], t["subcat"],
                                                          t["seecat"]):
            for kind, text in (("see", see), ("see_also", see_also)):
                if not text:
                    continue
                target, target_source, col, code = resolve(text, tree, f.kind)
                if target is None and target_source is None and code is None:
                    if not text.lower().startswith("condition"):
                        unresolved[f.kind] += 1
                    continue
                for column, value in zip(XREF_COLUMNS, (term_id, kind, target, target_source, col, code)):
                    rows[column].append(value)
            for kind, code in (("subcat", subcat), ("seecat", seecat)):
                if code:
                    for column, value in zip(XREF_COLUMNS, (term_id, kind, None, None, None,
                                                            code.strip().rstrip("-").upper() + "-")):
                        rows[column].append(value)
    return rows, dict(unresolved)
