"""Which sentences of a note a reasoning trace relies on, found by token overlap.

A note sentence is *evidence* when some sentence of the trace covers most of its content words (it quotes or
paraphrases it): ``score = max over trace sentences |words(note) & words(trace)| / |words(note)|``, counting content
words only (lower-case, stop words removed, plurals folded) and requiring at least ``min_shared`` of them. Trace
sentences that share no content word with the note are reported too: conclusions, outside knowledge, or the place
where hallucinated evidence hides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r"(?<=[.!?;])\s+|\s*\n\s*")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
STOP_WORDS = frozenset(
    """a an and are as at be been being but by for from had has have he her his i in into is it its of on or she
    than that the their them then there these they this to was were which while who will with without not no
    patient pt presents presented reports reported noted history also after before during per this those our we
    you your my me is may might would should could can did does do so such very""".split()
)


@dataclass(frozen=True)
class Sentence:
    """A sentence of a text: character offsets (end exclusive) and its content words."""

    start: int
    end: int
    text: str
    words: frozenset[str]


@dataclass(frozen=True)
class Evidence:
    """A note sentence the trace relies on, with its overlap score and the trace sentence that covers it best."""

    start: int
    end: int
    score: float
    trace_sentence: int


def _fold(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> frozenset[str]:
    """Lower-case content words of a text, stop words removed and plurals folded."""
    return frozenset(_fold(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 1)


def sentences(text: str) -> list[Sentence]:
    """Split a text into sentences after ``. ! ? ;`` followed by white space, and at line breaks.

    Offsets point into the text; blank sentences are dropped. Decimal points (``2.3``) do not split."""
    text = text or ""
    out = []
    start = 0
    for cut in [*_BOUNDARY.finditer(text), None]:
        end = cut.start() if cut is not None else len(text)
        raw = text[start:end]
        stripped = raw.strip()
        if stripped:
            begin = start + (len(raw) - len(raw.lstrip()))
            out.append(Sentence(begin, begin + len(stripped), stripped, content_words(stripped)))
        if cut is not None:
            start = cut.end()
    return out


def find_evidence(note: str, trace: str, *, threshold: float = 0.5, min_shared: int = 2) -> list[Evidence]:
    """Note sentences that the trace quotes or paraphrases, in note order."""
    trace_sents = [s for s in sentences(trace) if s.words]
    found = []
    for sent in sentences(note):
        if not sent.words:
            continue
        best, best_j = 0.0, -1
        for j, t in enumerate(trace_sents):
            shared = len(sent.words & t.words)
            if shared < min(min_shared, len(sent.words)):
                continue
            score = shared / len(sent.words)
            if score > best:
                best, best_j = score, j
        if best >= threshold:
            found.append(Evidence(sent.start, sent.end, round(best, 3), best_j))
    return found


def unsupported_trace_sentences(note: str, trace: str, *, min_words: int = 2) -> list[Sentence]:
    """Trace sentences (with at least ``min_words`` content words) that share no content word with the note:
    conclusions, outside knowledge, or evidence the note does not contain."""
    note_words = content_words(note)
    return [t for t in sentences(trace) if len(t.words) >= min_words and not (t.words & note_words)]
