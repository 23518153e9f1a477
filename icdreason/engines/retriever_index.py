"""The retriever's BM25 index over billable codes, cached next to the knowledge base, and what it knows per code.

Index scope: billable codes, without chapter XX (external causes are never the first-listed diagnosis), without the
history and status codes Z77-Z99 (family or personal history, allergy status, long-term drug use, absent organs,
implants: never the reason for an admission), without the weeks-of-gestation codes Z3A (additional codes only) and
without 7th-character codes for subsequent encounters or sequelae (an admission is an initial encounter).
"""

from __future__ import annotations

import re

import numpy as np

from ..codes import dotted
from .clinical_text import normalise_terms, terms

_INDEX_VERSION = "retriever:7"

#: Pregnancy codes (chapter XV, O00-O9A) apply only when the note speaks of a pregnancy or the puerperium, perinatal
#: codes (chapter XVI, P00-P96) only to newborns: without such words in the (non-negated) note, their scores are
#: multiplied by CONTEXT_PRIOR.
CONTEXT_GATES: dict[str, frozenset[str]] = {
    "O": frozenset(terms("pregnant pregnancy gestation gestational weeks trimester delivery delivered labor "
                         "postpartum puerperal puerperium cesarean gravida antepartum intrapartum obstetric")),
    "P": frozenset(terms("newborn neonate neonatal infant premature preterm birth nicu perinatal")),
}
#: Symptom and sign codes (chapter XVIII, R00-R99) are not coded first when a related definitive diagnosis is
#: established (Official Guidelines, Section II.A): their scores are multiplied by this prior.
SYMPTOM_CHAPTER_PRIOR = 0.8
#: Symptom-like codes outside chapter XVIII: pain in joint, limb or back, muscle weakness (Guidelines I.B.4-5).
SYMPTOM_LIKE = ("M25.5", "M54.2", "M54.5", "M54.6", "M54.9", "M79.6", "M79.1", "M62.81")
#: Words of a description that say nothing about the condition (they do not count towards coverage).
NEUTRAL_WORDS = frozenset(terms("unspecified other specified organism species site type initial encounter "
                                "closed part unsp nos classified elsewhere"))


def _in_scope(code_nodot: str, chapter: int) -> bool:
    """Whether a billable code is indexed: not chapter XX, not Z77-Z99 or Z3A, not a 7th character for a
    subsequent encounter or sequela (D-Z)."""
    category = code_nodot[:3]
    if chapter == 20 or category >= "Z77" or category == "Z3A":
        return False
    return not (len(code_nodot) == 7 and "D" <= code_nodot[-1] <= "Z")


class RetrieverIndex:
    """BM25 over billable codes (a :class:`~icdreason.kb.search.LexicalIndex`), cached next to the knowledge base."""

    def __init__(self, index, kb):
        self.index = index
        self.codes: list[str] = index.ids
        self.position: dict[str, int] = {code.replace(".", ""): i for i, code in enumerate(self.codes)}
        self._code_index = kb.index  # shared with validation: descriptions without another query
        scores = index.retriever.scores
        self.data, self.indices, self.indptr = scores["data"], scores["indices"], scores["indptr"]
        self.num_docs = int(scores["num_docs"])
        self.vocab: dict[str, int] = index.retriever.vocab_dict
        self.prior = np.array([SYMPTOM_CHAPTER_PRIOR if c.startswith("R") else 1.0 for c in self.codes])
        self.gated = {p: np.array([c.startswith(p) for c in self.codes]) for p in CONTEXT_GATES}
        self.symptom = np.array([c.startswith("R") or dotted(c).startswith(SYMPTOM_LIKE) for c in self.codes])
        self._parsed: dict[int, tuple[frozenset[str], list[frozenset[str]]]] = {}

    def parsed(self, doc: int) -> tuple[frozenset[str], list[frozenset[str]]]:
        """A code's description: its content terms and the terms of each "with …" qualifier (cached)."""
        got = self._parsed.get(doc)
        if got is None:
            desc = self.description(self.codes[doc]).lower()
            content = frozenset(t for t in terms(desc) if t not in NEUTRAL_WORDS)
            quals = []
            for m in re.finditer(r"\bwith\b(?!out)([^,;]*?)(?=,|;|\bwithout\b|\bwith\b|$)", desc):
                q = frozenset(t for t in terms(m.group(1)) if t not in NEUTRAL_WORDS)
                if q:
                    quals.append(q)
            got = self._parsed[doc] = (content, quals)
        return got

    def description(self, code: str) -> str:
        ci = self._code_index
        i = ci.position.get(code.replace(".", ""))
        return ci.descriptions[i] if i is not None else ""

    @staticmethod
    def _stamp(kb, symptoms: bool) -> str:
        """The cache stamp: the KB build, the index version and, with symptoms, the English descriptions' state."""
        version = kb.symptoms_stamp("en") if symptoms else None
        extra = f":{version}" if version is not None else ""
        return f"{kb.build_id}:{_INDEX_VERSION}:{int(symptoms)}{extra}"

    @classmethod
    def for_kb(cls, kb, *, symptoms: bool = True, progress=None) -> RetrieverIndex:
        """Load the cached index for this knowledge base, or build (and cache) it, saying so through ``progress``."""
        from ..kb.search import LexicalIndex

        stamp = cls._stamp(kb, symptoms)
        cache = kb.path.with_name(kb.path.name + (".retriever" if symptoms else ".retriever-nosym"))

        def documents() -> tuple[list[str], list[str]]:
            docs = cls._documents(kb, symptoms)
            return [d[0] for d in docs], [d[2] for d in docs]

        index = LexicalIndex.cached(
            cache, stamp, documents, progress=progress,
            message="Building the retriever index over billable codes (one time, a few seconds) …",
        )
        return cls(index, kb)

    @staticmethod
    def _documents(kb, symptoms: bool) -> list[tuple[str, str, str]]:
        """(code, description, normalised document text) of every indexed billable code (see the module docstring
        for the scope)."""
        ci = kb.index
        scope = [code for code, billable, chapter in zip(ci.nodot, ci.billable, ci.chapters)
                 if billable and _in_scope(code, chapter)]
        docs = []
        for doc in kb.billable_documents(scope, symptom_language="en" if symptoms else None):
            symptom_words = " ".join(doc.symptoms.split()[:80]) if doc.symptoms else ""
            text = normalise_terms(f"{doc.description} ; {doc.description} ; {doc.inclusion_terms} ; "
                                   f"{doc.parent_description} ; {symptom_words}")
            docs.append((doc.code, doc.description, text or "unspecified"))
        return docs

    def score(self, weights: dict[str, float]) -> np.ndarray:
        """Weighted BM25: sum over terms of weight x the term's BM25 contribution to each code."""
        ids, w = [], []
        for term, weight in weights.items():
            tid = self.vocab.get(term)
            if tid is not None and weight > 0:
                ids.append(tid)
                w.append(weight)
        if not ids:
            return np.zeros(self.num_docs, dtype=np.float32)
        starts, ends = self.indptr[ids], self.indptr[np.asarray(ids) + 1]
        idx = np.concatenate([self.indices[s:e] for s, e in zip(starts, ends)])
        val = np.concatenate([self.data[s:e] * wt for s, e, wt in zip(starts, ends, w)])
        return np.bincount(idx, weights=val, minlength=self.num_docs) * self.prior

    def matched(self, doc: int, weights: dict[str, float]) -> dict[str, float]:
        """Terms of the query found in one code's document, with their weighted contribution."""
        out = {}
        for term, weight in weights.items():
            tid = self.vocab.get(term)
            if tid is None or weight <= 0:
                continue
            s, e = self.indptr[tid], self.indptr[tid + 1]
            postings = self.indices[s:e]
            j = np.searchsorted(postings, doc)
            if j < len(postings) and postings[j] == doc:
                out[term] = float(self.data[s + j] * weight)
        return out
