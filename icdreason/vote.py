"""Self-consistency over K sampled codes: hierarchical agreement, confidence per level, top-k with support.

Agreement between two codes is their longest common prefix, weighted by level of the ICD-10-CM hierarchy:

- same chapter: 1 (even without a common prefix, e.g. S72.001A and T14.90 are both chapter XIX);
- each of the first two characters in common: 1;
- the third character in common (the same category): 2, because the category carries most of the diagnostic
  information (the paper's reward gives the same bonus);
- each further character in common: 1.

normalised by the largest score either code could reach, so that two equal codes agree with 1.0. The final code is
the sample with the highest total (weighted) agreement with all samples; ties go to the more frequent code, then to
the preferred one (``prefer``, e.g. billable), then to the more specific (longer) code, then to the first drawn.

Confidence is the share of the total weight (all samples, also those without a code) whose code equals the final
code, lies in its category, or in its chapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .codes import chapter_of, dotted, normalize

__all__ = ["Vote", "agreement", "vote", "LEVEL_WEIGHTS"]

#: Weight of a common character at each position (1-based) of the undotted code; the third completes the category.
LEVEL_WEIGHTS = (1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0)
CHAPTER_WEIGHT = 1.0


@dataclass
class Vote:
    """The outcome of self-consistency: the final code, confidence per level, and the ranked candidates."""

    code: str | None
    confidence: dict[str, float] = field(default_factory=lambda: {"code": 0.0, "category": 0.0, "chapter": 0.0})
    top_k: list[dict] = field(default_factory=list)  # [{"code", "support"}], support = share of the weight
    agreement: float = 0.0  # mean weighted agreement of the final code with the samples that have a code
    samples: int = 0
    with_code: int = 0


def _max_score(code: str) -> float:
    return CHAPTER_WEIGHT + sum(LEVEL_WEIGHTS[: len(code)])


def agreement(a: str, b: str) -> float:
    """Hierarchical agreement of two codes in [0, 1] (1.0 for the same code)."""
    a, b = normalize(a), normalize(b)
    if not a or not b:
        return 0.0
    score = 0.0
    ca, cb = chapter_of(a), chapter_of(b)
    if ca is not None and ca == cb:
        score += CHAPTER_WEIGHT
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y or i >= len(LEVEL_WEIGHTS):
            break
        score += LEVEL_WEIGHTS[i]
    return score / max(_max_score(a), _max_score(b))


def vote(codes: Sequence[str | None], *, weights: Sequence[float] | None = None, k: int = 5,
         prefer: Callable[[str], bool] | None = None, final: str | None = None) -> Vote:
    """Choose the final code among samples (None for a sample without a code) and measure how much they agree.

    ``weights`` gives each sample a weight (default 1 each; the retriever passes its candidate scores). ``final``
    fixes the final code instead of choosing it (confidence and top-k are then measured around that code).
    """
    n = len(codes)
    w = [1.0] * n if weights is None else [max(float(x), 0.0) for x in weights]
    if len(w) != n:
        raise ValueError("vote(): weights and codes differ in length")
    total = sum(w)
    norm = [normalize(c) if c else "" for c in codes]
    mass: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for i, (c, wi) in enumerate(zip(norm, w)):
        if c:
            mass[c] = mass.get(c, 0.0) + wi
            first_seen.setdefault(c, i)
    with_code = sum(1 for c in norm if c)
    if not mass or total <= 0:
        return Vote(None, samples=n, with_code=with_code)

    distinct = list(mass)
    coded_weight = sum(mass.values())
    support_of = {c: sum(mass[o] * agreement(c, o) for o in distinct) for c in distinct}

    def rank(c: str) -> tuple:
        return (support_of[c], mass[c], bool(prefer(dotted(c))) if prefer else False, len(c), -first_seen[c])

    ordered = sorted(distinct, key=rank, reverse=True)
    best = normalize(final) if final and normalize(final) in mass else ordered[0]
    best_chapter = chapter_of(best)
    confidence = {
        "code": sum(m for c, m in mass.items() if c == best) / total,
        "category": sum(m for c, m in mass.items() if c[:3] == best[:3]) / total,
        "chapter": sum(m for c, m in mass.items() if best_chapter is not None and chapter_of(c) == best_chapter)
        / total,
    }
    rest = sorted((c for c in distinct if c != best), key=lambda c: (mass[c], support_of[c], -first_seen[c]),
                  reverse=True)
    top = [best, *rest][: max(k, 1)]
    top_k = [{"code": dotted(c), "support": round(mass[c] / total, 4)} for c in top]
    return Vote(dotted(best), {key: round(v, 4) for key, v in confidence.items()}, top_k,
                round(support_of[best] / coded_weight, 4), n, with_code)
