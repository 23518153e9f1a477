"""Breakdowns of one evaluation: per chapter (the paper's Figure 4), frequency thirds, any predictions column, and the
format / validation counts that ``icdreason predict`` records."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..codes import CHAPTER_RANGES
from ..errors import UsageError
from .metrics import LEVELS, Encoded, LevelScores, score_level

__all__ = ["MAX_GROUPS", "by_field", "frequency_thirds", "per_chapter", "validation_counts"]

MAX_GROUPS = 100
THIRDS = ("head", "middle", "tail")
_BY_NUMBER = {str(c.number): c for c in CHAPTER_RANGES}


def per_chapter(encoded: dict[str, Encoded], chapter: LevelScores) -> list[dict[str, Any]]:
    """One row per chapter class (gold or predicted): support, predicted, P/R/F1 at chapter level, and the share of
    that chapter's gold rows whose category and full code were right. Sorted by support, largest first."""
    enc = encoded["chapter"]
    k = enc.n_classes
    support = np.bincount(enc.y_true, minlength=k)
    right = {lvl: np.bincount(enc.y_true, weights=(encoded[lvl].y_true == encoded[lvl].y_pred), minlength=k)
             for lvl in ("category", "code")}
    index = {label: i for i, label in enumerate(enc.classes)}
    pc = chapter.per_class
    rows = []
    for j, label in enumerate(pc["label"]):
        i = index[label]
        ch = _BY_NUMBER.get(label)
        sup = int(support[i])
        rows.append({
            "chapter": ch.number if ch else None,
            "label": ch.label if ch else "-",
            "range": ch.range if ch else None,
            "title": ch.title if ch else "no chapter (missing, malformed or outside every range)",
            "support": sup,
            "predicted": int(pc["predicted"][j]),
            "precision": float(pc["precision"][j]),
            "recall": float(pc["recall"][j]),
            "f1": float(pc["f1"][j]),
            "category_accuracy": float(right["category"][i] / sup) if sup else None,
            "code_accuracy": float(right["code"][i] / sup) if sup else None,
        })
    rows.sort(key=lambda r: (-r["support"], r["chapter"] if r["chapter"] is not None else 99))
    return rows


def frequency_thirds(scores: LevelScores) -> list[dict[str, Any]]:
    """Gold classes sorted by support (largest first, ties by label) and cut where the cumulative support passes one
    and two thirds of the rows, as in the paper's Figure 4. Macro P/R/F1 over each third's classes, and accuracy over
    its rows. A class goes to the third in which its first row falls."""
    pc = scores.per_class
    gold = pc["support"] > 0
    labels, support = pc["label"][gold], pc["support"][gold]
    order = np.lexsort((labels.astype(str), -support))
    cum_before = np.concatenate(([0], np.cumsum(support[order])[:-1]))
    total = support.sum()
    group = np.minimum(2, (3 * cum_before) // total) if total else np.zeros(0, dtype=int)
    out = []
    for g, name in enumerate(THIRDS):
        idx = np.flatnonzero(gold)[order[group == g]]
        n = int(pc["support"][idx].sum())
        out.append({
            "third": name,
            "classes": int(len(idx)),
            "rows": n,
            "share": n / float(total) if total else 0.0,
            "macro": {m: float(pc[m][idx].mean()) if len(idx) else 0.0 for m in ("precision", "recall", "f1")},
            "accuracy": float(pc["tp"][idx].sum() / n) if n else 0.0,
            "smallest_support": int(pc["support"][idx].min()) if len(idx) else 0,
        })
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _group_labels(values: Sequence[Any], bins: int) -> list[str]:
    """A group label per row: the value itself, or an equal-width bin for numbers with more than 10 distinct values."""
    present = [v for v in values if v is not None and v != ""]
    numbers = [_number(v) for v in present]
    if present and all(x is not None for x in numbers) and len(set(numbers)) > 10:
        lo, hi = min(numbers), max(numbers)
        width = (hi - lo) / bins or 1.0
        edges = [lo + width * i for i in range(bins + 1)]

        def label(v: Any) -> str:
            if v is None or v == "":
                return "(missing)"
            b = min(bins - 1, int((_number(v) - lo) / width))
            close = "]" if b == bins - 1 else ")"
            return f"[{edges[b]:.3g}, {edges[b + 1]:.3g}{close}"

        return [label(v) for v in values]

    def plain(v: Any) -> str:
        if v is None or v == "":
            return "(missing)"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, (list, dict)):
            return json.dumps(v, sort_keys=True)
        return str(v)

    return [plain(v) for v in values]


def by_field(encoded: dict[str, Encoded], values: Sequence[Any], *, field: str, bins: int = 5) -> list[dict[str, Any]]:
    """Metrics at every level for each value of a predictions column (numbers binned), largest group first."""
    labels = _group_labels(values, bins)
    groups = Counter(labels)
    if len(groups) > MAX_GROUPS:
        raise UsageError(f"--by {field} has {len(groups)} distinct values (at most {MAX_GROUPS}): "
                         "choose a coarser column")
    arr = np.array(labels, dtype=object)
    out = []
    for value, n in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])):
        mask = arr == value
        levels = {lvl: score_level(encoded[lvl], mask) for lvl in LEVELS}
        out.append({
            "value": value,
            "n": int(n),
            "levels": {lvl: {"macro": s.macro.as_dict(), "accuracy": s.accuracy} for lvl, s in levels.items()},
        })
    return out


def truthy(value: Any) -> bool | None:
    """A flag cell as True/False (``"true"``, ``"1"``, ``"yes"`` … from text files), None when blank."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "t")
    return bool(value)


def validation_counts(format_ok: Sequence[Any] | None, status: Sequence[Any] | None,
                      has_prediction: Sequence[bool], uses_llm: Sequence[Any] | None = None) -> dict[str, Any]:
    """Format-valid rate (the paper's check, over rows with a prediction) and validation-status counts.

    Rows of an engine without a language model (``uses_llm`` false: the retriever) are neither well-formed nor
    malformed: they are counted apart (``format_ok_not_applicable``), and a run of only such rows has no rate (None,
    shown as n/a), whatever ``format_ok`` an older version wrote for them."""
    out: dict[str, Any] = {}
    if format_ok is not None:
        bare = [truthy(v) is False for v in uses_llm] if uses_llm is not None else [False] * len(format_ok)
        flags = [truthy(v) for v, has, no in zip(format_ok, has_prediction, bare) if has and not no]
        known = [f for f in flags if f is not None]
        out["format_ok_rate"] = sum(known) / len(known) if known else None
        out["format_ok_rows"] = len(known)
        out["format_ok_not_applicable"] = sum(1 for has, no in zip(has_prediction, bare) if has and no)
    if status is not None:
        counts = Counter(
            (str(v) if v not in (None, "") else "(none)") if has else "(no prediction)"
            for v, has in zip(status, has_prediction)
        )
        out["status_counts"] = dict(counts.most_common())
    return out
