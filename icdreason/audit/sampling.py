"""Choosing which predictions to review: all of them, or a seeded sample by one of four strategies.

- ``random``: a uniform random sample.
- ``low-confidence``: the cases whose code had the least self-consistency support (``confidence.code``; for the
  retriever, which draws no samples, its share among its candidates, ``candidate_share.code``) first.
- ``per-chapter``: stratified by predicted chapter, the same number from each chapter (round-robin, so small chapters
  are fully represented before large ones get more).
- ``disagreement``: the cases whose sampled answers disagreed most (entropy of the ``top_k`` supports) first.

Ties and within-group order are broken by a seeded shuffle, so the same seed always gives the same sample.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

from ..errors import UsageError

STRATEGIES = ("all", "random", "low-confidence", "per-chapter", "disagreement")


def code_confidence(record: dict[str, Any]) -> float | None:
    """The support of the predicted code (``confidence.code``, else the retriever's ``candidate_share.code``), or None
    when the record has neither."""
    conf = record.get("confidence")
    if conf is None:
        conf = record.get("candidate_share")
    if isinstance(conf, dict):
        value = conf.get("code")
    elif isinstance(conf, (int, float)):
        value = conf
    else:
        value = None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def share_of(record: dict[str, Any]) -> tuple[Any, str]:
    """The shares a record gives its code, category and chapter, and what to call them: ``confidence`` (a vote share
    over the samples of a language model) or, for the retriever, ``candidate_share`` (its share among its own
    candidates; neither is a calibrated probability)."""
    conf = record.get("confidence")
    if conf is None and record.get("candidate_share") is not None:
        return record["candidate_share"], "candidate share"
    return conf, "vote share"


def disagreement(record: dict[str, Any]) -> float | None:
    """Shannon entropy (bits) of the supports of the top-k codes; None without top-k, 0 when all samples agreed."""
    top = record.get("top_k") or []
    supports = []
    for item in top:
        try:
            supports.append(float(item.get("support", 0)))
        except (AttributeError, TypeError, ValueError):
            continue
    supports = [s for s in supports if s > 0]
    if not supports:
        return None
    total = sum(supports)
    rest = max(0.0, 1.0 - total) if total <= 1.0 + 1e-9 else 0.0
    probs = [s / max(total + rest, 1e-12) for s in supports] + ([rest] if rest > 1e-9 else [])
    return -sum(p * math.log2(p) for p in probs if p > 0)


def sample(records: list[dict[str, Any]], n: int | None, strategy: str = "random", seed: int = 0) -> list[int]:
    """Indices of the records to review, in review order. ``n=None`` (or strategy ``all``) keeps every record."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if n is not None and n < 1:
        raise UsageError("--sample must be at least 1")
    rng = random.Random(seed)
    every = list(range(len(records)))
    if strategy == "all" or (n is None and strategy == "random"):
        return every
    size = len(records) if n is None else min(n, len(records))
    if strategy == "random":
        return rng.sample(every, size)
    if strategy == "low-confidence":
        return _ranked(records, every, rng, code_confidence, "confidence", reverse=False)[:size]
    if strategy == "disagreement":
        return _ranked(records, every, rng, disagreement, "top_k", reverse=True)[:size]
    return _per_chapter(records, every, rng, size)


def _ranked(records, every, rng, key, field_name: str, *, reverse: bool) -> list[int]:
    scores = {i: key(records[i]) for i in every}
    if all(s is None for s in scores.values()):
        raise UsageError(
            f"no record has {field_name!r}: predict with several samples (--n > 1) for self-consistency, "
            "or use --strategy random or per-chapter"
        )
    shuffled = every[:]
    rng.shuffle(shuffled)
    known = [i for i in shuffled if scores[i] is not None]
    unknown = [i for i in shuffled if scores[i] is None]
    known.sort(key=lambda i: scores[i], reverse=reverse)  # stable: ties keep the seeded order
    return known + unknown


def _per_chapter(records, every, rng, size: int) -> list[int]:
    groups: dict[Any, list[int]] = defaultdict(list)
    for i in every:
        chapter = records[i].get("chapter")
        groups[chapter if isinstance(chapter, int) else None].append(i)
    for members in groups.values():
        rng.shuffle(members)
    order = sorted(groups, key=lambda c: (c is None, c if c is not None else 0))
    picked: list[int] = []
    depth = 0
    while len(picked) < size:
        for chapter in order:
            if depth < len(groups[chapter]):
                picked.append(groups[chapter][depth])
                if len(picked) == size:
                    break
        depth += 1
    return picked
