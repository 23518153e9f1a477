"""Seeded stratified train/validation/test split by target code (paper: 65,228 / 9,260 / 18,654 ≈ 70/10/20).

Within each code the samples are put in a seeded random order and assigned by systematic sampling: sample ``k`` of
``n`` sits at ``u = (k + r) / n`` with one random offset ``r`` per code, and goes to test when ``u < test``, to
validation when ``u < test + validation``, else to train. Every code's split sizes are then within one sample of its
share, and the totals match the proportions in expectation. Codes with fewer than ``min_per_code`` samples are too
rare to stratify and go to train (counted in :class:`SplitResult`).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from ..errors import UsageError

__all__ = ["SPLITS", "SplitResult", "stratified_split"]

SPLITS = ("train", "validation", "test")


@dataclass
class SplitResult:
    """Which split each key went to, and what the report needs."""

    assignment: dict[Hashable, str]
    sizes: Counter = field(default_factory=Counter)
    rare_codes: int = 0  # codes sent to train whole because they had fewer than min_per_code samples
    rare_samples: int = 0


def stratified_split(keys: Sequence[Hashable], labels: Sequence[str], *, validation: float = 0.1, test: float = 0.2,
                     seed: int = 0, min_per_code: int = 3) -> SplitResult:
    """Assign each key to train/validation/test, stratified by its label (see the module docstring)."""
    if len(keys) != len(labels):
        raise UsageError(f"{len(keys)} keys but {len(labels)} labels")
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise UsageError(f"split shares must be in [0, 1) and leave room for train (validation={validation}, "
                         f"test={test})")
    groups: dict[str, list[Hashable]] = defaultdict(list)
    for key, label in zip(keys, labels):
        groups[label].append(key)
    rng = random.Random(seed)
    result = SplitResult(assignment={})
    for label in sorted(groups):
        members = sorted(groups[label], key=lambda k: (str(type(k)), k))
        if len(members) < min_per_code:
            for key in members:
                result.assignment[key] = "train"
            result.rare_codes += 1
            result.rare_samples += len(members)
            continue
        rng.shuffle(members)
        n, offset = len(members), rng.random()
        for k, key in enumerate(members):
            u = (k + offset) / n
            result.assignment[key] = "test" if u < test else ("validation" if u < test + validation else "train")
    result.sizes = Counter(result.assignment.values())
    for name in SPLITS:
        result.sizes.setdefault(name, 0)
    return result
