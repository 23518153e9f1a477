"""The embedded default engine: a lexical retriever over the code table. **No language model is used.**

For each note it splits sections and sentences, drops negated mentions (NegEx-style), weights the chief complaint,
present illness and assessment over history sections, and then codes the way a coder looks codes up:

1. **Alphabetic Index** (when the knowledge base has one; ``index_evidence.py``): the note's terms are looked up
   as main terms and subterms, "see" references followed, the code completed with the note's site and side words and
   checked against the tabular list's Excludes1 notes. A mention that names only the main term gets the index's
   default (Pneumonia → J18.9).
2. **BM25** (bm25s) over every billable code's description, inclusion terms, parent's description and, when the
   knowledge base has them, English symptom descriptions (``retriever_index.py`` for its scope).
3. Candidates from both are re-ranked by what their descriptions say and by coding rules (``coding_rules.py``): the
   site and side a code names must agree with the note, "code first" / "use additional code" notes decide which
   code is the principal diagnosis, symptom codes yield to a documented definitive diagnosis.

With an index, when no index entry supports the best candidate and either its lexical evidence is thin or the
index recognises no condition at all in the chief complaint, present illness or assessment, no code is proposed
and the answer is flagged (``evidence_too_thin``); a note in which nothing matches any code (digits, noise, the
truncation marker alone) gets the same flag. The answer has the same shape as a model's
(``<think>…</think><diagnosis>CODE</diagnosis>``): the think part lists the index paths, evidence sentences and
matched terms; the top candidates with their scores travel in ``Generation.extra["candidates"]`` and their index
paths in ``Generation.extra["index_paths"]``.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..codes import dotted
from ..notes import sections, without_truncation_marker
from ..prompts import neutralize_note
from ..settings import option
from .base import Engine, EngineOptions, Generation, Prompt, SamplingParams
from .clinical_text import expand_abbreviations, negated_terms, negation_spans, split_sentences, terms
from .coding_rules import NoteSites, agreement, principal_first
from .index_evidence import IndexEvidence, NoteIndexer
from .retriever_index import CONTEXT_GATES, RetrieverIndex

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

#: Words stated as a diagnosis (after "consistent with", "admitted for", "suspected" … up to the end of the clause,
#: at most 10 words) count this much more than the rest of their sentence.
DIAGNOSTIC_CUE_BOOST = 2.0
_CLAUSE_END = re.compile(r"[.;:!?]|,\s|\b(but|however|although|and was|and is|which|without)\b", re.IGNORECASE)
_DIAGNOSTIC_CUE = re.compile(
    r"\b(consistent with|concerning for|suspicious for|diagnosed with|diagnosis of|admitted (?:\w+ )*?(?:for|with)|"
    r"likely|suspected|presumed|found to have|shows?|showed|revealed|demonstrat\w+|is admitted)\b|"
    r"\b(?:assessment|impression|diagnosis|diagnoses)\s*:",
    re.IGNORECASE,
)
#: Codes gated by CONTEXT_GATES score this much when the note lacks their context words.
CONTEXT_PRIOR = 0.2
#: When the note speaks of a pregnancy, codes outside chapter XV score this much: chapter 15 codes have sequencing
#: priority over codes from other chapters (Guidelines I.C.15.a.1).
PREGNANCY_PRIORITY = 0.3
#: Re-ranking of the best RERANK_DEPTH candidates (see ``_rerank``).
RERANK_DEPTH = 60
#: A symptom code scores this much less again when a definitive (non-symptom) diagnosis among the candidates is
#: matched by the note's diagnostic statements (Guidelines II.A, I.B.4-5).
SYMPTOM_DEFINITIVE_PRIOR = 0.5
#: A "with X" qualifier whose words the note never states positively (or negates) is not documented: factor.
UNSUPPORTED_QUALIFIER_PRIOR = 0.85
#: Weight of description coverage in the re-ranking (0: off).
COVERAGE_WEIGHT = 0.25
#: An index-supported candidate gains INDEX_WEIGHT x (the best lexical score) x (its index strength / the best)
#: ** INDEX_SHARPNESS.
INDEX_WEIGHT = 1.5
INDEX_SHARPNESS = 1.0
#: Below this lexical score, a best candidate that no index entry supports is too thin to answer with (with an
#: index; see the module docstring).
THIN_LEXICAL_SCORE = 8.0
#: Codes the index may find but that are never the principal diagnosis: the supplementary infectious-agent codes
#: B95-B97 ("use additional code to identify the agent") and factors influencing health status (chapter XXI).
_NOT_PRINCIPAL = ("B95", "B96", "B97", "Z")
#: Sections where the reason for admission is written: their sites and sides must agree with a code's.
REASON_SECTIONS = frozenset({"chief_complaint", "present_illness", "assessment", "preamble"})


@dataclass
class RetrieverOptions(EngineOptions):
    """Options of the retriever engine."""

    candidates: int = option(10, "Candidates kept per note (top-k source).")
    negation: bool = option(True, "Drop negated mentions (NegEx-style triggers).")
    symptoms: bool = option(True, "Index English symptom descriptions when the KB has them.")
    evidence: int = option(4, "Evidence sentences listed in the trace.")
    index: bool = option(True, "Look the note's terms up in the Alphabetic Index when the KB has one.")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _stated_text(text: str) -> str:
    """What a sentence states as a diagnosis: after each diagnostic cue, to the end of the clause (10 words at most)."""
    spans = []
    for m in _DIAGNOSTIC_CUE.finditer(text):
        stop = _CLAUSE_END.search(text, m.end())
        spans.append(" ".join(text[m.end(): stop.start() if stop else len(text)].split()[:10]))
    return " ; ".join(spans)


class _Kept(NamedTuple):
    """A sentence the retriever reads."""

    section: str
    weight: float       # its section's weight, x DIAGNOSTIC_CUE_BOOST when it states a diagnosis
    sentence: str
    terms: list[str]
    text: str           # the sentence without its negated mentions, abbreviations spelled out
    base: float         # its section's weight
    stated: str         # what it states as a diagnosis ('' when nothing)


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
        self._indexer: NoteIndexer | None = None
        if self.options.index and self.kb.has_alphabetic_index:
            position = self.index.position
            self._indexer = NoteIndexer(self.kb, lambda code: code in position and not code.startswith(_NOT_PRINCIPAL))

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
    def _query(self, note: str) -> tuple[dict[str, float], list[_Kept], list[str]]:
        """Term weights, the kept sentences and the negated mentions of a note.

        Also sets ``self._stated``: the terms the chief complaint, present illness or assessment state as a diagnosis
        (after a diagnostic cue; every term of an assessment sentence)."""
        counts: dict[str, list[float]] = {}
        kept: list[_Kept] = []
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
                        # a negated finding is one a code description could have matched, not any fragment after
                        # "not" ("not patient data" in a header names nothing the index knows)
                        negated.extend(m for m in parsed.mentions() if self._names_a_finding(m))
                        text = parsed.kept_text()
                text = expand_abbreviations(text)
                found = terms(text)
                if not found:
                    continue
                stated_text = _stated_text(text)
                stated = set(terms(stated_text)) if stated_text else set()
                if weight >= 2.0:
                    diagnostic |= set(found) if sec.kind == "assessment" else stated
                kept.append(_Kept(sec.kind, weight * (DIAGNOSTIC_CUE_BOOST if stated else 1.0), sentence, found, text,
                                  weight, stated_text))
                for t in found:
                    counts.setdefault(t, []).append(weight * DIAGNOSTIC_CUE_BOOST if t in stated else weight)
        weights = {t: max(ws) * (1.0 + 0.5 * np.log(len(ws))) for t, ws in counts.items()}
        self._stated = diagnostic
        return weights, kept, negated

    def _names_a_finding(self, mention: str) -> bool:
        """True when a negated mention negates a term some code's document uses (a clinical term)."""
        vocab = self.index.vocab
        return any(t in vocab for t in negated_terms(expand_abbreviations(mention)))

    def _rerank(self, top: list[int], scores: np.ndarray, weights: dict[str, float],
                found: dict[int, IndexEvidence], sites: NoteSites) -> None:
        """Re-score the best candidates in place by what their descriptions say (description words only):

        - coverage: the share of the description's content words found in the note, ``(1-w) + w x share``
          (w = COVERAGE_WEIGHT), so that one rare word does not carry a code whose other words are absent (when the
          note speaks of a pregnancy or a newborn, every word of that context counts as found);
        - a "with X" qualifier whose words the note never states (or negates) is not documented: x
          UNSUPPORTED_QUALIFIER_PRIOR each (the "without X" variant wins);
        - a symptom code (R00-R99, SYMPTOM_LIKE) x SYMPTOM_DEFINITIVE_PRIOR when another candidate, not a symptom,
          matches a word of the note's diagnostic statements that no symptom candidate has (Guidelines II.A);
        - a code whose site or side disagrees with the note's (``coding_rules.agreement``).

        Coverage and qualifiers are not asked of a code the Alphabetic Index found (``found``): the index already
        matched the note's words to it, lay words included.
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
        definitive = definitive or any(not index.symptom[i] and ev.section in REASON_SECTIONS and not ev.default
                                       for i, ev in found.items())
        for i in top:
            content, quals = parsed[i]
            factor = agreement(index.description(index.codes[i]), sites)
            if content and i not in found:
                factor *= (1.0 - COVERAGE_WEIGHT) + COVERAGE_WEIGHT * len(content & present) / len(content)
            for q in quals if i not in found else ():
                if not q & present:
                    factor *= UNSUPPORTED_QUALIFIER_PRIOR
            if definitive and index.symptom[i]:
                factor *= SYMPTOM_DEFINITIVE_PRIOR
            scores[i] *= factor

    def analyze(self, note: str) -> dict[str, Any]:
        """Candidates (code, score), their index paths, evidence and negated mentions for one note; ``thin`` is True
        when the best candidate's evidence is too thin to answer with."""
        weights, kept, negated = self._query(without_truncation_marker(note))
        index = self.index
        scores = index.score(weights)
        for prefix, context in CONTEXT_GATES.items():
            if not context & weights.keys():
                scores[index.gated[prefix]] *= CONTEXT_PRIOR
        lexical = scores
        found = self._index_evidence(kept)
        sites = NoteSites.read([k.text for k in kept if k.section in REASON_SECTIONS])
        hit = np.flatnonzero(scores)  # only codes sharing a term with the note (a small share of all codes)
        depth = min(max(RERANK_DEPTH, self.options.candidates), len(hit))
        pool = hit[np.argpartition(-scores[hit], depth - 1)[:depth]] if depth else hit
        if found:
            pool = np.union1d(pool, np.fromiter(found, dtype=np.int64, count=len(found)))
        if len(pool):
            scores = scores.copy()
            reference = float(scores[pool].max()) or 1.0
            strongest = max((ev.strength for ev in found.values()), default=1.0)
            for i, ev in found.items():
                scores[i] += INDEX_WEIGHT * reference * (ev.strength / strongest) ** INDEX_SHARPNESS
            if CONTEXT_GATES["O"] & weights.keys():
                scores[pool[~index.gated["O"][pool]]] *= PREGNANCY_PRIORITY
            self._rerank([int(i) for i in pool], scores, weights, found, sites)
            hit = pool
        k = min(self.options.candidates, len(hit))
        top = hit[np.argpartition(-scores[hit], k - 1)[:k]] if k else hit
        top = sorted((int(i) for i in top), key=lambda i: (-scores[i], index.codes[i]))
        candidates = [(index.codes[i], float(scores[i])) for i in top]
        sequenced = None
        if candidates:
            candidates, sequenced = principal_first(candidates, self.kb, sites.words, index.description,
                                                    lambda code: code in index.position)
        by_code = {index.codes[i]: ev for i, ev in found.items()}
        best = index.position.get(candidates[0][0].replace(".", "")) if candidates else None
        thin = best is None or (self._indexer is not None and index.codes[best] not in by_code
                                and (float(lexical[best]) < THIN_LEXICAL_SCORE
                                     or not any(ev.section in REASON_SECTIONS for ev in found.values())))
        evidence: list[_Evidence] = []
        if candidates and best is not None:
            matched = index.matched(best, weights)
            for k in kept:
                hit = [t for t in dict.fromkeys(k.terms) if t in matched]
                if hit:
                    evidence.append(_Evidence(k.section, k.weight, k.sentence, hit))
            evidence.sort(key=lambda e: -e.weight * sum(matched[t] / weights[t] for t in e.terms))
        return {"candidates": candidates, "evidence": evidence[: self.options.evidence], "negated": negated,
                "index": {c: by_code[c] for c, _ in candidates if c in by_code}, "sequenced": sequenced,
                "thin": thin}

    def _index_evidence(self, kept: list[_Kept]) -> dict[int, IndexEvidence]:
        """Alphabetic Index evidence by candidate position (empty without an index or with ``index=False``)."""
        if self._indexer is None:
            return {}
        position = self.index.position
        found = self._indexer.evidence((k.section, k.base, k.sentence, k.text, k.stated) for k in kept)
        return {position[code]: ev for code, ev in found.items()}

    def _trace(self, analysis: dict[str, Any]) -> str:
        lines = [NO_LLM_NOTICE]
        candidates = analysis["candidates"]
        if not candidates:
            lines.append("No term of the note matched a code description, so no code is proposed.")
            return "\n".join(lines)
        code = candidates[0][0]
        if analysis["thin"]:  # the trace names no code: a parser must not find one in it
            lines.append("No Alphabetic Index entry supports the best lexical match and the note names no condition "
                         "the index knows in its chief complaint, present illness or assessment, or few of the "
                         "match's words: the evidence is too thin, so no code is proposed. The candidates travel with "
                         "the record for review.")
            return "\n".join(lines)
        lines.append(f"Best match: {code} {self.index.description(code)} (score {candidates[0][1]:.2f}).")
        found = analysis["index"].get(code)
        if found is not None:
            lines.append(f"Alphabetic Index: \"{found.sentence}\" → {found.path} → {code}"
                         + (" (the main term's default for an unspecified mention)" if found.default else "") + ".")
        if analysis["sequenced"]:
            lines.append(f"Sequencing (tabular notes): {analysis['sequenced']}.")
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
                code = analysis["candidates"][0][0] if analysis["candidates"] and not analysis["thin"] else ""
                text = f"<think>\n{trace}\n</think>\n<diagnosis>{code}</diagnosis>" if code else \
                    f"<think>\n{trace}\n</think>"
                out.append(Generation(
                    texts=[text], tokens_in=0, tokens_out=0, seconds=time.perf_counter() - start,
                    extra={"candidates": [(dotted(c), s) for c, s in analysis["candidates"]], "uses_llm": False,
                           "index_paths": {dotted(c): ev.path for c, ev in analysis["index"].items()},
                           "flags": ["evidence_too_thin"] if analysis["thin"] else []},
                ))
            except Exception as exc:  # one bad note must not stop the batch
                out.append(Generation(texts=[], seconds=time.perf_counter() - start,
                                      error=f"retriever failed on this note: {type(exc).__name__}: {exc}"))
        return out
