"""The paper's hierarchical metrics: map codes to chapter / category / full-code classes, then count.

Everything here is vectorised: the distinct strings are normalised once (a handful of thousands, however many rows),
each row becomes an integer class id by fancy indexing, and every count comes from ``numpy.bincount``.

Definitions (see docs/metrics.md):

* **Label space**: the normalised gold codes of the file, or a fixed vocabulary (``labels``). Category space: the
  categories (first three characters) of that set. Chapter space: the 22 official chapters.
* **NIL**: a prediction that is missing, malformed, or outside the label space of a level is the class ``NIL`` at
  that level. At chapter level only predictions whose chapter cannot be determined (missing, malformed, or outside
  every official range) are NIL; any real chapter is its own class even when no gold row has it.
* **Macro**: the unweighted mean of per-class precision, recall and F1 over the classes that occur in the gold labels
  or in the predictions (``tp + fp + fn > 0``), with 0 for 0/0: scikit-learn's
  ``precision_recall_fscore_support(average="macro", zero_division=0)`` and torchmetrics' multiclass ``average="macro"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..codes import ICD10CM_PATTERN, chapter_of, normalize

__all__ = [
    "LEVELS",
    "LEVEL_TITLES",
    "NIL",
    "Encoded",
    "LabelSpace",
    "LevelScores",
    "PRF",
    "class_counts",
    "encode",
    "scores_from_counts",
    "score_level",
]

NIL = "NIL"
LEVELS: tuple[str, ...] = ("chapter", "category", "code")
LEVEL_TITLES = {"chapter": "Chapter", "category": "Category", "code": "Full code"}


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 as fractions in [0, 1]."""

    precision: float
    recall: float
    f1: float

    def as_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class LabelSpace:
    """The normalised codes a prediction may take without becoming NIL, and where they came from."""

    codes: frozenset[str]
    source: str  # "gold" or the path of the labels file

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(c[:3] for c in self.codes)

    @classmethod
    def from_codes(cls, codes: Iterable[str | None], source: str) -> LabelSpace:
        distinct = {c for c in codes if c}
        return cls(frozenset(n for n in (normalize(c) for c in distinct) if n), source)


@dataclass
class Encoded:
    """One level's rows as integer class ids into ``classes`` (``classes[nil]`` is ``"NIL"``)."""

    level: str
    classes: np.ndarray  # object array of class labels
    y_true: np.ndarray  # int64, one per row
    y_pred: np.ndarray
    nil: int

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass
class LevelScores:
    """Every number reported for one level."""

    level: str
    n: int
    macro: PRF
    macro_gold: PRF
    micro: PRF
    accuracy: float
    classes: int  # classes counted by the macro average (present in gold or predictions)
    gold_classes: int
    nil_predictions: int
    per_class: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # label, support, predicted, tp, p, r, f1

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "macro": self.macro.as_dict(),
            "macro_gold_classes": self.macro_gold.as_dict(),
            "micro_without_nil": self.micro.as_dict(),
            "accuracy": self.accuracy,
            "classes": self.classes,
            "gold_classes": self.gold_classes,
            "nil_predictions": self.nil_predictions,
        }


def factorize(values: Sequence[object]) -> tuple[np.ndarray, list]:
    """Integer codes (-1 for missing/empty) and the distinct values, with a hash table in Arrow (C++)."""
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        arr = pa.array(values if isinstance(values, list) else list(values), from_pandas=True)
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type) and not pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, dtype=np.int64), []
    enc = arr.dictionary_encode()
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return idx, enc.dictionary.to_pylist()


def _level_label(code: str, level: str) -> str | None:
    """The class of one normalised, well-formed code at a level, before the label-space check."""
    if level == "code":
        return code
    if level == "category":
        return code[:3]
    ch = chapter_of(code)
    return str(ch.number) if ch else None


def _map_uniques(
    uniques: list, level: str, space: set[str] | None, *, gold: bool
) -> list[str]:
    """Class label per distinct raw string. ``space`` None means the level has no label-space restriction."""
    out = []
    for raw in uniques:
        code = normalize(raw) if raw else ""
        if not code or (not gold and not ICD10CM_PATTERN.match(code)):
            out.append(NIL)
            continue
        label = _level_label(code, level)
        out.append(label if label is not None and (space is None or label in space) else NIL)
    return out


def encode(
    gold: Sequence[str | None], pred: Sequence[str | None], space: LabelSpace | None = None
) -> dict[str, Encoded]:
    """Map aligned gold and predicted codes to class ids at chapter, category and full-code level.

    ``space`` defaults to the gold codes. Gold codes are normalised but not otherwise checked (a gold code outside a
    fixed vocabulary, or outside every chapter range at chapter level, becomes NIL); predictions that are missing,
    malformed (not the ICD-10-CM structure after normalisation) or outside the space are NIL.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold and predictions differ in length ({len(gold)} != {len(pred)})")
    g_idx, g_uni = factorize(gold)
    p_idx, p_uni = factorize(pred)
    if space is None:
        space = LabelSpace.from_codes(g_uni, "gold")
    spaces: dict[str, set[str] | None] = {"chapter": None, "category": set(space.categories), "code": set(space.codes)}
    out: dict[str, Encoded] = {}
    for level in LEVELS:
        g_lab = _map_uniques(g_uni, level, spaces[level], gold=True)
        p_lab = _map_uniques(p_uni, level, spaces[level], gold=False)
        classes = np.array(sorted(set(g_lab) | set(p_lab) | {NIL}), dtype=object)
        lookup = {c: i for i, c in enumerate(classes)}
        nil = lookup[NIL]
        # One extra slot at the end so that index -1 (a missing value) lands on NIL.
        g_map = np.array([lookup[x] for x in g_lab] + [nil], dtype=np.int64)
        p_map = np.array([lookup[x] for x in p_lab] + [nil], dtype=np.int64)
        out[level] = Encoded(level, classes, g_map[g_idx], p_map[p_idx], nil)
    return out


def class_counts(y_true: np.ndarray, y_pred: np.ndarray, k: int, weights: np.ndarray | None = None):
    """Per-class support (gold count), predicted count and true positives, by ``bincount``."""
    hit = y_true == y_pred
    support = np.bincount(y_true, weights=weights, minlength=k)
    predicted = np.bincount(y_pred, weights=weights, minlength=k)
    tp = np.bincount(y_true[hit], weights=None if weights is None else weights[hit], minlength=k)
    return support, predicted, tp


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def scores_from_counts(support, predicted, tp, nil: int | None = None) -> dict[str, float]:
    """Macro (present classes and gold classes), micro without NIL and accuracy from per-class counts."""
    p, r = _div(tp, predicted), _div(tp, support)
    f1 = _div(2 * np.asarray(tp, dtype=np.float64), np.asarray(support) + np.asarray(predicted))
    present = (support + predicted) > 0
    in_gold = support > 0
    n = float(np.sum(support))

    def mean(x, mask):
        return float(x[mask].mean()) if mask.any() else 0.0

    keep = np.ones(len(support), dtype=bool)
    if nil is not None:
        keep[nil] = False
    tp_k, pred_k, sup_k = float(np.sum(tp[keep])), float(np.sum(predicted[keep])), float(np.sum(support[keep]))
    mp = tp_k / pred_k if pred_k else 0.0
    mr = tp_k / sup_k if sup_k else 0.0
    return {
        "macro_p": mean(p, present), "macro_r": mean(r, present), "macro_f1": mean(f1, present),
        "gold_p": mean(p, in_gold), "gold_r": mean(r, in_gold), "gold_f1": mean(f1, in_gold),
        "micro_p": mp, "micro_r": mr, "micro_f1": 2 * tp_k / (pred_k + sup_k) if pred_k + sup_k else 0.0,
        "accuracy": float(np.sum(tp)) / n if n else 0.0,
        "_p": p, "_r": r, "_f1": f1, "_present": present,
    }


def score_level(enc: Encoded, rows: np.ndarray | None = None) -> LevelScores:
    """Score one level, optionally on a subset of rows (an index or boolean mask)."""
    y_true, y_pred = (enc.y_true, enc.y_pred) if rows is None else (enc.y_true[rows], enc.y_pred[rows])
    k = enc.n_classes
    support, predicted, tp = class_counts(y_true, y_pred, k)
    s = scores_from_counts(support, predicted, tp, enc.nil)
    present = s["_present"]
    per_class = {
        "label": enc.classes[present], "support": support[present], "predicted": predicted[present],
        "tp": tp[present], "precision": s["_p"][present], "recall": s["_r"][present], "f1": s["_f1"][present],
    }
    return LevelScores(
        level=enc.level,
        n=int(len(y_true)),
        macro=PRF(s["macro_p"], s["macro_r"], s["macro_f1"]),
        macro_gold=PRF(s["gold_p"], s["gold_r"], s["gold_f1"]),
        micro=PRF(s["micro_p"], s["micro_r"], s["micro_f1"]),
        accuracy=s["accuracy"],
        classes=int(present.sum()),
        gold_classes=int((support > 0).sum()),
        nil_predictions=int(predicted[enc.nil]),
        per_class=per_class,
    )
