"""Agreement statistics: Cohen's kappa for two raters, Fleiss' kappa for more, at each level of the code hierarchy.

Levels: ``decision`` (accept / correct / reject), ``chapter`` (the ICD-10-CM chapter number), ``category`` (the first
three characters) and ``code`` (the full code). A reviewer's code for a case is the model's code when they accepted
it and their own code when they corrected it (or gave one with a rejection); cases without a code for every rater are
left out of the code levels. Kappa is ``nan`` when it is undefined (every rating in one class).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ..codes import chapter_of, normalize

LEVELS = ("decision", "chapter", "category", "code")
CODE_LEVELS = ("chapter", "category", "code")


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels for the same items: ``(p_o - p_e) / (1 - p_e)``."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return math.nan
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if expected >= 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa; ``ratings[i]`` holds every rater's label for item ``i`` (the same number of raters per item)."""
    if not ratings:
        return math.nan
    m = len(ratings[0])
    if m < 2 or any(len(r) != m for r in ratings):
        raise ValueError("Fleiss' kappa needs the same number (at least two) of ratings for every item")
    n = len(ratings)
    totals: Counter = Counter()
    p_items = 0.0
    for item in ratings:
        counts = Counter(item)
        totals.update(counts)
        p_items += (sum(c * c for c in counts.values()) - m) / (m * (m - 1))
    p_bar = p_items / n
    p_e = sum((c / (n * m)) ** 2 for c in totals.values())
    if p_e >= 1.0:
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def level_label(code: str | None, level: str) -> Hashable | None:
    """A code's label at a level of the hierarchy (chapter number, category, undotted code); None without a code."""
    if not code:
        return None
    if level == "chapter":
        chapter = chapter_of(code)
        return chapter.number if chapter else None
    if level == "category":
        return normalize(code)[:3]
    if level == "code":
        return normalize(code)
    raise ValueError(f"unknown level {level!r}: choose one of {', '.join(CODE_LEVELS)}")


@dataclass(frozen=True)
class Agreement:
    """One agreement figure: who, at which level, over how many items."""

    raters: tuple[str, ...]
    level: str
    items: int
    observed: float  # share of items on which all raters agree
    kappa: float
    method: str  # cohen | fleiss


def agreement(labels: dict[str, dict[str, Hashable | None]], level: str) -> Agreement | None:
    """Agreement of raters at one level. ``labels[rater][case_id]`` is a label (None = no label: the case is left
    out). Cohen's kappa for two raters, Fleiss' kappa for more; None when fewer than two raters or no shared item."""
    raters = tuple(sorted(labels))
    if len(raters) < 2:
        return None
    shared = set.intersection(*(
        {case for case, label in labels[r].items() if label is not None} for r in raters
    ))
    items = sorted(shared)
    if not items:
        return None
    rows = [[labels[r][case] for r in raters] for case in items]
    observed = sum(len(set(row)) == 1 for row in rows) / len(rows)
    if len(raters) == 2:
        kappa = cohen_kappa([row[0] for row in rows], [row[1] for row in rows])
        method = "cohen"
    else:
        kappa = fleiss_kappa(rows)
        method = "fleiss"
    return Agreement(raters, level, len(items), observed, kappa, method)
