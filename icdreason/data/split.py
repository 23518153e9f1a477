"""Seeded train/validation/test splits stratified by target code (paper: 65,228 / 9,260 / 18,654 ≈ 70/10/20).

:func:`stratified_split` (``data prepare --split-by admission``): within each code the samples are put in a seeded
random order and assigned by systematic sampling: sample ``k`` of ``n`` sits at ``u = (k + r) / n`` with one random
offset ``r`` per code, and goes to test when ``u < test``, to validation when ``u < test + validation``, else to
train. Every code's split sizes are then within one sample of its share, and the totals match the proportions in
expectation. Codes with fewer than ``min_per_code`` samples are too rare to stratify and go to train (counted in
:class:`SplitResult`).

:func:`grouped_split` (``--split-by patient``, the default) keeps every patient's admissions in one split, so no
patient is in two. It is the same systematic sampling with patients as the units:

1. each patient belongs to the stratum of its *rarest* target code (fewest admissions in the cohort; ties by code),
   the rule iterative stratification uses for multi-label data: rare codes get spread first;
2. within a stratum, the patients are put in a seeded random order and laid end to end, each taking as many places
   as it has admissions (``N`` places in all); a patient whose middle admission sits at place ``m`` goes where
   ``u = (m + r) / N`` falls, with one random offset ``r`` per stratum;
3. strata with fewer than ``min_per_code`` admissions go to train whole.

With one admission per patient this is :func:`stratified_split` exactly (same seed, same assignment). A patient with
many admissions moves all of them at once, so a stratum's split sizes can miss its share by up to that patient's
size; the codes of a patient's other admissions follow it. scikit-learn's ``StratifiedGroupKFold`` was not used: it
holds a dense patients × codes count matrix (about 60,000 × 6,400 for MIMIC-IV, 3 GB) and scans it per patient and
fold, and it gives folds, not 70/10/20 shares.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from ..errors import UsageError

__all__ = ["SPLITS", "SplitResult", "grouped_split", "stratified_split", "split_report"]

SPLITS = ("train", "validation", "test")


@dataclass
class SplitResult:
    """Which split each key went to, and what the report needs."""

    assignment: dict[Hashable, str]
    sizes: Counter = field(default_factory=Counter)
    rare_codes: int = 0  # codes (patient split: strata) sent to train whole, fewer than min_per_code samples
    rare_samples: int = 0


def stratified_split(keys: Sequence[Hashable], labels: Sequence[str], *, validation: float = 0.1, test: float = 0.2,
                     seed: int = 0, min_per_code: int = 3) -> SplitResult:
    """Assign each key to train/validation/test, stratified by its label (see the module docstring)."""
    _check(keys, labels, validation, test)
    groups: dict[str, list[Hashable]] = defaultdict(list)
    for key, label in zip(keys, labels):
        groups[label].append(key)
    rng = random.Random(seed)
    result = SplitResult(assignment={})
    for label in sorted(groups):
        members = sorted(groups[label], key=_order)
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


def _check(keys: Sequence[Hashable], labels: Sequence[str], validation: float, test: float) -> None:
    if len(keys) != len(labels):
        raise UsageError(f"{len(keys)} keys but {len(labels)} labels")
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise UsageError(f"split shares must be in [0, 1) and leave room for train (validation={validation}, "
                         f"test={test})")


def _order(key: Hashable) -> tuple[str, Hashable]:
    return (str(type(key)), key)


def _where(u: float, validation: float, test: float) -> str:
    return "test" if u < test else ("validation" if u < test + validation else "train")


def grouped_split(keys: Sequence[Hashable], labels: Sequence[str], groups: Sequence[Hashable | None], *,
                  validation: float = 0.1, test: float = 0.2, seed: int = 0, min_per_code: int = 3) -> SplitResult:
    """Assign each key to train/validation/test with all keys of a group (a patient) in the same split, stratified
    by label (see the module docstring). A key whose group is None is a group of its own."""
    _check(keys, labels, validation, test)
    if len(groups) != len(keys):
        raise UsageError(f"{len(keys)} keys but {len(groups)} groups")
    members: dict[Hashable, list[Hashable]] = defaultdict(list)
    codes: dict[Hashable, set[str]] = defaultdict(set)
    for key, label, group in zip(keys, labels, groups):
        unit = ("admission", key) if group is None else ("patient", group)
        members[unit].append(key)
        codes[unit].add(label)
    frequency = Counter(labels)
    strata: dict[str, list[list[Hashable]]] = defaultdict(list)
    for unit, keys_of in members.items():
        strata[min(codes[unit], key=lambda c: (frequency[c], c))].append(sorted(keys_of, key=_order))
    rng = random.Random(seed)
    result = SplitResult(assignment={})
    for label in sorted(strata):
        units = sorted(strata[label], key=lambda ks: _order(ks[0]))
        size = sum(len(u) for u in units)
        if size < min_per_code:
            for unit in units:
                result.assignment.update(dict.fromkeys(unit, "train"))
            result.rare_codes += 1
            result.rare_samples += size
            continue
        rng.shuffle(units)
        offset, start = rng.random(), 0
        for unit in units:
            split = _where((start + (len(unit) - 1) / 2 + offset) / size, validation, test)
            result.assignment.update(dict.fromkeys(unit, split))
            start += len(unit)
    result.sizes = Counter(result.assignment.values())
    for name in SPLITS:
        result.sizes.setdefault(name, 0)
    return result


def split_report(assignment: dict[Hashable, str], keys: Sequence[Hashable], labels: Sequence[str],
                 groups: Sequence[Hashable | None]) -> dict[str, object]:
    """What a split did to patients and codes: patients and admissions per split, patients in more than one split,
    and how many target codes are present in every split."""
    splits_of: dict[Hashable, set[str]] = defaultdict(set)
    code_splits: dict[str, set[str]] = defaultdict(set)
    admissions: Counter = Counter()
    without_patient = 0
    for key, label, group in zip(keys, labels, groups):
        split = assignment.get(key)
        if split is None:
            continue
        admissions[split] += 1
        code_splits[label].add(split)
        if group is None:
            without_patient += 1
        else:
            splits_of[group].add(split)
    patients = Counter(s for splits in splits_of.values() for s in splits)
    return {
        "admissions": {s: admissions.get(s, 0) for s in SPLITS},
        "patients": {s: patients.get(s, 0) for s in SPLITS} | {"all": len(splits_of)},
        "patients_in_several_splits": sum(1 for splits in splits_of.values() if len(splits) > 1),
        "admissions_without_patient": without_patient,
        "codes": len(code_splits),
        "codes_in_every_split": sum(1 for splits in code_splits.values() if len(splits) == len(SPLITS)),
    }
