"""Lexical search over code descriptions and inclusion terms with bm25s, cached next to the knowledge base."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import duckdb


class Searchable(Protocol):
    """What :func:`search_codes` needs of a knowledge base (:class:`~icdreason.kb.store.KnowledgeBase` has it)."""

    def index_lookup(self, text: str, *, limit: int = 10) -> list[Any]: ...

    def description(self, code: str) -> str | None: ...

    def lexical_search(self, text: str, k: int = 10) -> list[SearchHit]: ...

# Abbreviations coders type that the tabular descriptions spell out.
QUERY_EXPANSIONS = {
    "nstemi": "non-st elevation nstemi myocardial infarction",
    "stemi": "st elevation stemi myocardial infarction",
    "mi": "myocardial infarction",
    "chf": "congestive heart failure",
    "copd": "chronic obstructive pulmonary disease",
    "dka": "diabetic ketoacidosis",
    "uti": "urinary tract infection",
    "afib": "atrial fibrillation",
    "cad": "coronary artery disease atherosclerotic heart disease",
    "htn": "hypertension",
    "ckd": "chronic kidney disease",
    "aki": "acute kidney failure",
    "dvt": "deep vein thrombosis",
    "pe": "pulmonary embolism",
    "gerd": "gastro-esophageal reflux disease",
    "cva": "cerebral infarction",
    "tia": "transient cerebral ischemic attack",
    "sob": "shortness of breath",
    "t2dm": "type 2 diabetes mellitus",
    "t1dm": "type 1 diabetes mellitus",
    "dm": "diabetes mellitus",
    "gi": "gastrointestinal",
    "ards": "acute respiratory distress syndrome",
    "cap": "pneumonia",
}


def expand_query(text: str) -> str:
    """Add the spelled-out form of clinical abbreviations (``nstemi`` -> ``non-st elevation … infarction``)."""
    words = text.lower().split()
    extra = [QUERY_EXPANSIONS[w.strip(".,;:()")] for w in words if w.strip(".,;:()") in QUERY_EXPANSIONS]
    return " ".join([text, *extra])


def _quiet_bm25s() -> None:
    logging.getLogger("bm25s").setLevel(logging.ERROR)


class LexicalIndex:
    """A BM25 index over (id, text) documents, saved to and loaded from a directory."""

    def __init__(self, ids: list[str], retriever):
        self.ids = ids
        self.retriever = retriever

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> LexicalIndex:
        import bm25s

        _quiet_bm25s()
        tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(list(ids), retriever)

    def save(self, directory: Path, stamp: str) -> None:
        """Save atomically enough for a cache: write into a temporary folder, then rename it into place."""
        tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(tmp), show_progress=False)
        (tmp / "ids.json").write_text(json.dumps({"stamp": stamp, "ids": self.ids}))
        if directory.exists():
            import shutil

            shutil.rmtree(directory)
        os.replace(tmp, directory)

    @classmethod
    def load(cls, directory: Path, stamp: str) -> LexicalIndex | None:
        """Load a saved index when its stamp matches; None when absent or stale."""
        import bm25s

        _quiet_bm25s()
        meta_file = directory / "ids.json"
        if not meta_file.exists():
            return None
        meta = json.loads(meta_file.read_text())
        if meta.get("stamp") != stamp:
            return None
        retriever = bm25s.BM25.load(str(directory), show_progress=False, mmap=False)
        return cls(meta["ids"], retriever)

    @classmethod
    def cached(cls, directory: Path, stamp: str, documents, *, progress=None,
               message: str = "Building the search index (one time) …") -> LexicalIndex:
        """Load the index saved in ``directory`` with this ``stamp``, or build it from ``documents()`` (a callable
        returning ``(ids, texts)``) and save it. A damaged cache is rebuilt; a read-only location keeps the index in
        memory only."""
        try:
            index = cls.load(directory, stamp)
        except Exception:  # a damaged cache is rebuilt, never fatal
            index = None
        if index is not None:
            return index
        if progress:
            progress(message)
        ids, texts = documents()
        index = cls.build(ids, texts)
        try:
            index.save(directory, stamp)
        except OSError:
            pass
        return index

    def query(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """Top-k (id, score) pairs for a free-text query; empty when no query term is in the vocabulary."""
        import bm25s

        tokens = bm25s.tokenize([text], stopwords="en", show_progress=False, return_ids=False)
        vocab = self.retriever.vocab_dict
        terms = [t for t in tokens[0] if t in vocab]
        if not terms:
            return []
        k = min(k, len(self.ids))
        docs, scores = self.retriever.retrieve([terms], k=k, show_progress=False, n_threads=1)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every document for a query (zeros when no term is known)."""
        import bm25s

        tokens = bm25s.tokenize([text], stopwords="en", show_progress=False, return_ids=False)
        vocab = self.retriever.vocab_dict
        terms = [t for t in tokens[0] if t in vocab]
        if not terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        return self.retriever.get_scores(terms)


@dataclass(frozen=True)
class SearchHit:
    """One code found by ``kb search``: through the Alphabetic Index (``index_path`` says how) or by its text."""

    code: str
    description: str
    billable: bool
    score: float                        # index: words of the query the path accounts for; text: BM25
    index_path: str | None = None       # 'Attack, attacks › heart → see Infarct, infarction › myocardium, myocardial'
    unmatched: tuple[str, ...] = ()     # index: words of the query no title on the path accounts for


class CodeSearch:
    """``kb search``: BM25 over each code's description and inclusion terms, billable codes ranked first."""

    def __init__(self, con: duckdb.DuckDBPyConnection, index: LexicalIndex, texts: dict[str, str]):
        self.con = con
        self.index = index
        self.texts = texts

    @classmethod
    def from_db(cls, con: duckdb.DuckDBPyConnection, path: Path) -> CodeSearch:
        """The search over the knowledge base open on ``con``; its index is cached next to the file at ``path``."""
        rows = con.execute(
            """SELECT c.code, c.description || coalesce(' ; ' || string_agg(n.text, ' ; ' ORDER BY n.seq), '')
               FROM codes c LEFT JOIN notes n ON n.code = c.code AND n.kind = 'inclusion_term'
               WHERE c.kind IN ('category', 'subcategory', 'code')
               GROUP BY c.code, c.description ORDER BY c.code"""
        ).fetchall()
        ids = [r[0] for r in rows]
        texts = {r[0]: r[1] for r in rows}
        build_id = con.execute("SELECT value FROM meta WHERE key = 'build_id'").fetchone()
        stamp = (build_id[0] if build_id else "") + ":codes:1"
        cache = path.with_name(path.name + ".search")
        index = LexicalIndex.cached(cache, stamp, lambda: (ids, [texts[i] for i in ids]))
        return cls(con, index, texts)

    def search(self, text: str, k: int = 10) -> list[SearchHit]:
        hits = self.index.query(expand_query(text), k=max(k * 5, 50))
        if not hits:
            return []
        codes = [c for c, _ in hits]
        placeholders = ", ".join("?" for _ in codes)
        info = {
            code: (desc, billable)
            for code, desc, billable in self.con.execute(
                f"SELECT code, description, billable FROM codes WHERE code IN ({placeholders}) "
                "AND kind IN ('category', 'subcategory', 'code')",
                codes,
            ).fetchall()
        }
        ranked = sorted(hits, key=lambda h: (not info[h[0]][1], -h[1]))
        return [
            SearchHit(code, info[code][0], info[code][1], score)
            for code, score in ranked[:k]
        ]


def search_codes(kb: Searchable, text: str, k: int = 10) -> list[SearchHit]:
    """``kb search``: the Alphabetic Index's hits first (abbreviations spelled out; a hit weaker than half the best,
    an External Cause hit counting 0.8, is left out), then the lexical hits of :class:`CodeSearch` not already found.
    Without an index, the lexical hits alone."""
    from .alpha.words import unaccounted, words

    hits: list[SearchHit] = []
    found = kb.index_lookup(expand_query(text), limit=k)
    strength = [h.score * (0.8 if h.source == "eindex" else 1.0) for h in found]
    for hit, score in zip(found, strength):
        if score >= 0.5 * max(strength):
            description = kb.description(hit.code) or ""
            hits.append(SearchHit(hit.code, description, True, round(hit.score, 2), index_path=hit.path,
                                  unmatched=unaccounted(text, hit.covered | set(words(description)),
                                                        QUERY_EXPANSIONS)))
    seen = {h.code for h in hits}
    hits.extend(h for h in kb.lexical_search(text, k=k) if h.code not in seen)
    return hits[:k]
