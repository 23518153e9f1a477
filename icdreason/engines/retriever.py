"""The embedded default engine: a lexical retriever over the code table. **No language model is used.**

For each note it splits sections and sentences, drops negated mentions (NegEx-style), weights the chief complaint,
present illness and assessment over history sections, and scores every billable code with BM25 (bm25s) over its
description, its inclusion terms, its parent's description and, when the knowledge base has them, its English
symptom description. Its answer has the same shape as a model's (``<think>…</think><diagnosis>CODE</diagnosis>``):
the think part lists the evidence sentences and matched terms, the diagnosis is the best candidate, and the top
candidates with their scores travel in ``Generation.extra["candidates"]``.

Index scope: billable codes, without chapter XX (external causes are never the first-listed diagnosis), without the
history and status codes Z77-Z99 (family or personal history, allergy status, long-term drug use, absent organs,
implants: never the reason for an admission), without the weeks-of-gestation codes Z3A (additional codes only) and
without 7th-character codes for subsequent encounters or sequelae
(an admission is an initial encounter).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..codes import dotted
from ..notes import sections
from ..prompts import neutralize_note
from ..settings import option
from .base import Engine, EngineOptions, Generation, Prompt, SamplingParams
from .clinical_text import expand_abbreviations, negation_spans, normalise_terms, split_sentences, terms

__all__ = ["RetrieverEngine", "RetrieverOptions", "SECTION_WEIGHTS", "NO_LLM_NOTICE", "RetrieverIndex"]

NO_LLM_NOTICE = ("No language model was used: icdreason's retriever ranked ICD-10-CM code descriptions against the "
                 "note with BM25.")

#: How much a term counts, by the section it appears in. Family history, medications and allergies do not describe
#: this admission's diagnosis and count for nothing.
SECTION_WEIGHTS: dict[str, float] = {
    "chief_complaint": 3.0, "assessment": 3.0, "present_illness": 2.0, "preamble": 1.0, "other": 0.5,
    "exam": 0.7, "results": 0.7, "past_history": 0.25, "social_history": 0.1,
    "family_history": 0.0, "medications": 0.0, "allergies": 0.0,
}
_INDEX_VERSION = "retriever:7"

#: Words stated as a diagnosis (after "consistent with", "admitted for", "suspected" … up to the end of the clause,
#: at most 10 words) count this much more than the rest of their sentence.
DIAGNOSTIC_CUE_BOOST = 2.0
_CLAUSE_END = re.compile(r"[.;:!?]|,\s|\b(but|however|although|and was|and is|which|without)\b", re.IGNORECASE)
_DIAGNOSTIC_CUE = re.compile(
    r"\b(consistent with|concerning for|suspicious for|diagnosed with|diagnosis of|admitted (?:\w+ )*?(?:for|with)|"
    r"likely|suspected|presumed|found to have|shows?|showed|revealed|demonstrat\w+|is admitted)\b",
    re.IGNORECASE,
)
#: Pregnancy codes (chapter XV, O00-O9A) apply only when the note speaks of a pregnancy or the puerperium, perinatal
#: codes (chapter XVI, P00-P96) only to newborns: without such words in the (non-negated) note, their scores are
#: multiplied by CONTEXT_PRIOR.
CONTEXT_GATES: dict[str, frozenset[str]] = {
    "O": frozenset(terms("pregnant pregnancy gestation gestational weeks trimester delivery delivered labor "
                         "postpartum puerperal puerperium cesarean gravida antepartum intrapartum obstetric")),
    "P": frozenset(terms("newborn neonate neonatal infant premature preterm birth nicu perinatal")),
}
CONTEXT_PRIOR = 0.2
#: Symptom and sign codes (chapter XVIII, R00-R99) are not coded first when a related definitive diagnosis is
#: established (Official Guidelines, Section II.A): their scores are multiplied by this prior.
SYMPTOM_CHAPTER_PRIOR = 0.8
#: Re-ranking of the best RERANK_DEPTH candidates (see ``_rerank``).
RERANK_DEPTH = 60
#: Symptom-like codes outside chapter XVIII: pain in joint, limb or back, muscle weakness (Guidelines I.B.4-5).
SYMPTOM_LIKE = ("M25.5", "M54.2", "M54.5", "M54.6", "M54.9", "M79.6", "M79.1", "M62.81")
#: A symptom code scores this much less again when a definitive (non-symptom) diagnosis among the candidates is
#: matched by the note's diagnostic statements (Guidelines II.A, I.B.4-5).
SYMPTOM_DEFINITIVE_PRIOR = 0.5
#: A "with X" qualifier whose words the note never states positively (or negates) is not documented: factor.
UNSUPPORTED_QUALIFIER_PRIOR = 0.85
#: Weight of description coverage in the re-ranking (0: off).
COVERAGE_WEIGHT = 0.25
#: Words of a description that say nothing about the condition (they do not count towards coverage).
NEUTRAL_WORDS = frozenset(terms("unspecified other specified organism species site type initial encounter "
                                "closed part unsp nos classified elsewhere"))


@dataclass
class RetrieverOptions(EngineOptions):
    """Options of the retriever engine."""

    candidates: int = option(10, "Candidates kept per note (top-k source).")
    negation: bool = option(True, "Drop negated mentions (NegEx-style triggers).")
    symptoms: bool = option(True, "Index English symptom descriptions when the KB has them.")
    evidence: int = option(4, "Evidence sentences listed in the trace.")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def _stated_terms(text: str) -> set[str]:
    """Terms a sentence states as a diagnosis: after a diagnostic cue, to the end of the clause (10 words at most)."""
    stated: set[str] = set()
    for m in _DIAGNOSTIC_CUE.finditer(text):
        stop = _CLAUSE_END.search(text, m.end())
        scope = text[m.end(): stop.start() if stop else len(text)]
        stated.update(terms(expand_abbreviations(" ".join(scope.split()[:10]))))
    return stated


@dataclass
class _Evidence:
    section: str
    weight: float
    sentence: str
    terms: list[str]


class RetrieverEngine(Engine):
    """BM25 retrieval of billable codes from the note (see the module docstring)."""

    name: ClassVar[str] = "retriever"
    Options: ClassVar[type[EngineOptions]] = RetrieverOptions
    uses_llm: ClassVar[bool] = False
    supports_constrain: ClassVar[bool] = False
    supports_sampling: ClassVar[bool] = False

    def __init__(self, model: str | None = None, options: RetrieverOptions | None = None, kb=None):
        super().__init__(model, options or RetrieverOptions(), kb)
        self._owns_kb = kb is None
        if self.kb is None:
            from ..kb import KnowledgeBase

            self.kb = KnowledgeBase.open()
        self._index: RetrieverIndex | None = None
        _ = self.index  # load (or build) now, so that the first batch's timing is the retriever's own

    @property
    def index(self) -> RetrieverIndex:
        if self._index is None:
            self._index = RetrieverIndex.for_kb(self.kb, symptoms=self.options.symptoms, progress=_stderr)
        return self._index

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "uses_llm": False, "notice": NO_LLM_NOTICE}

    def close(self) -> None:
        if self._owns_kb and self.kb is not None:
            self.kb.close()

    # -- analysis ------------------------------------------------------------------------------------------------
    def _query(self, note: str) -> tuple[dict[str, float], list[tuple[str, float, str, list[str]]], list[str]]:
        """Term weights, the kept sentences (section, weight, text, terms) and the negated mentions of a note.

        Also sets ``self._stated``: the terms the chief complaint, present illness or assessment state as a diagnosis
        (after a diagnostic cue; every term of an assessment sentence)."""
        counts: dict[str, list[float]] = {}
        kept: list[tuple[str, float, str, list[str]]] = []
        negated: list[str] = []
        diagnostic: set[str] = set()
        for sec in sections(note):
            weight = SECTION_WEIGHTS.get(sec.kind, 0.5)
            if weight <= 0:
                continue
            for sentence in split_sentences(sec.text):
                text = sentence
                if self.options.negation:
                    parsed = negation_spans(sentence)
                    if parsed.negated:
                        negated.append(parsed.negated_text())
                        text = parsed.kept_text()
                found = terms(expand_abbreviations(text))
                if not found:
                    continue
                stated = _stated_terms(text)
                if weight >= 2.0:
                    diagnostic |= set(found) if sec.kind == "assessment" else stated
                kept.append((sec.kind, weight * (DIAGNOSTIC_CUE_BOOST if stated else 1.0), sentence, found))
                for t in found:
                    counts.setdefault(t, []).append(weight * DIAGNOSTIC_CUE_BOOST if t in stated else weight)
        weights = {t: max(ws) * (1.0 + 0.5 * np.log(len(ws))) for t, ws in counts.items()}
        self._stated = diagnostic
        return weights, kept, negated

    def _rerank(self, top: list[int], scores: np.ndarray, weights: dict[str, float]) -> None:
        """Re-score the best candidates in place by what their descriptions say (description words only):

        - coverage: the share of the description's content words found in the note, ``(1-w) + w x share``
          (w = COVERAGE_WEIGHT), so that one rare word does not carry a code whose other words are absent (when the
          note speaks of a pregnancy or a newborn, every word of that context counts as found);
        - a "with X" qualifier whose words the note never states (or negates) is not documented: x
          UNSUPPORTED_QUALIFIER_PRIOR each (the "without X" variant wins);
        - a symptom code (R00-R99, SYMPTOM_LIKE) x SYMPTOM_DEFINITIVE_PRIOR when another candidate, not a symptom,
          matches a word of the note's diagnostic statements that no symptom candidate has (Guidelines II.A).
        """
        index = self.index
        present = set(weights)
        for context in CONTEXT_GATES.values():  # "32 weeks gestation" covers "pregnancy" and "trimester" too
            if context & present:
                present |= context
        parsed = {i: index.parsed(i) for i in top}
        symptom_words: set[str] = set()
        for i in top:
            if index.symptom[i]:
                symptom_words |= parsed[i][0]
        definitive = any(not index.symptom[i] and (parsed[i][0] & self._stated) - symptom_words for i in top)
        for i in top:
            content, quals = parsed[i]
            factor = 1.0
            if content:
                factor *= (1.0 - COVERAGE_WEIGHT) + COVERAGE_WEIGHT * len(content & present) / len(content)
            for q in quals:
                if not q & present:
                    factor *= UNSUPPORTED_QUALIFIER_PRIOR
            if definitive and index.symptom[i]:
                factor *= SYMPTOM_DEFINITIVE_PRIOR
            scores[i] *= factor

    def analyze(self, note: str) -> dict[str, Any]:
        """Candidates (code, score), evidence and negated mentions for one note."""
        weights, kept, negated = self._query(note)
        index = self.index
        scores = index.score(weights)
        for prefix, context in CONTEXT_GATES.items():
            if not context & weights.keys():
                scores[index.gated[prefix]] *= CONTEXT_PRIOR
        hit = np.flatnonzero(scores)  # only codes sharing a term with the note (a small share of all codes)
        depth = min(max(RERANK_DEPTH, self.options.candidates), len(hit))
        if depth:
            pool = hit[np.argpartition(-scores[hit], depth - 1)[:depth]]
            scores = scores.copy()
            self._rerank([int(i) for i in pool], scores, weights)
            hit = pool
        k = min(self.options.candidates, len(hit))
        top = hit[np.argpartition(-scores[hit], k - 1)[:k]] if k else hit
        top = sorted((int(i) for i in top), key=lambda i: (-scores[i], index.codes[i]))
        candidates = [(index.codes[i], float(scores[i])) for i in top]
        evidence: list[_Evidence] = []
        if top:
            matched = index.matched(top[0], weights)
            for kind, weight, sentence, found in kept:
                hit = [t for t in dict.fromkeys(found) if t in matched]
                if hit:
                    evidence.append(_Evidence(kind, weight, sentence, hit))
            evidence.sort(key=lambda e: -e.weight * sum(matched[t] / weights[t] for t in e.terms))
        return {"candidates": candidates, "evidence": evidence[: self.options.evidence], "negated": negated}

    def _trace(self, analysis: dict[str, Any]) -> str:
        lines = [NO_LLM_NOTICE]
        candidates = analysis["candidates"]
        if not candidates:
            lines.append("No term of the note matched a code description, so no code is proposed.")
            return "\n".join(lines)
        code = candidates[0][0]
        lines.append(f"Best match: {code} {self.index.description(code)} (score {candidates[0][1]:.2f}).")
        if analysis["evidence"]:
            lines.append("Evidence sentences (section, weight; matched terms):")
            for ev in analysis["evidence"]:
                lines.append(f"- [{ev.section.replace('_', ' ')}, x{ev.weight:g}] \"{ev.sentence}\" "
                             f"(matched: {', '.join(ev.terms)})")
        if analysis["negated"]:
            shown = "; ".join(f'"{n}"' for n in analysis["negated"][:5])
            lines.append(f"Negated mentions left out: {shown}.")
        others = [f"{c} {self.index.description(c)} ({s:.2f})" for c, s in candidates[1:5]]
        if others:
            lines.append("Other candidates: " + "; ".join(others) + ".")
        return "\n".join(lines)

    # -- the engine protocol ---------------------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """One deterministic answer per note (sampling settings do not apply: every sample would be the same)."""
        out = []
        for prompt in prompts:
            start = time.perf_counter()
            try:
                analysis = self.analyze(neutralize_note(prompt.note)[0])
                trace = self._trace(analysis)
                code = analysis["candidates"][0][0] if analysis["candidates"] else ""
                text = f"<think>\n{trace}\n</think>\n<diagnosis>{code}</diagnosis>" if code else \
                    f"<think>\n{trace}\n</think>"
                out.append(Generation(
                    texts=[text], tokens_in=0, tokens_out=0, seconds=time.perf_counter() - start,
                    extra={"candidates": [(dotted(c), s) for c, s in analysis["candidates"]], "uses_llm": False},
                ))
            except Exception as exc:  # one bad note must not stop the batch
                out.append(Generation(texts=[], seconds=time.perf_counter() - start,
                                      error=f"retriever failed on this note: {type(exc).__name__}: {exc}"))
        return out
