"""The hierarchical outcome reward and the result type every rule returns.

``O`` is the longest common prefix, in characters, of a predicted and a gold code (both undotted). A prediction that
is not the gold code earns ``O/|g| + (O - 2 if O >= 3 else 0)`` units (``prefix_bonus="released"``, the authors'
code) or ``O/|g| + |O - 2|`` (``"literal"``, Equation 1 as printed); a unit is worth ``match_weight``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..codes import common_prefix
from ..errors import InputError

__all__ = ["RewardBreakdown", "best_same_letter", "gold_codes", "outcome_units", "partial_units"]


@dataclass(slots=True)
class RewardBreakdown:
    """The reward of one response: the total, each component, and what it was computed from."""

    score: float
    components: dict[str, float]
    code: str | None = None  # the undotted predicted code that was scored
    gold: str | None = None  # the undotted gold code it was compared with
    prefix: int = 0  # O: longest common prefix in characters
    exact: bool = False
    format_ok: bool = False
    judge_score: float | None = None  # the judge's raw 1-5 score (None: not judged or failed)

    def as_dict(self) -> dict[str, float]:
        """Flat numeric dict (what verl logs): score, every component, prefix, exact, format_ok."""
        out = {"score": self.score}
        out.update(self.components)
        out["prefix"] = float(self.prefix)
        out["exact"] = float(self.exact)
        out["format_ok"] = float(self.format_ok)
        return out


def partial_units(o: int, gold_length: int, *, bonus_from: int = 3, prefix_bonus: str = "released") -> float:
    """Units for a prediction sharing ``o`` leading characters with a gold code of ``gold_length`` characters."""
    if prefix_bonus == "literal":
        return o / gold_length + abs(o - 2)
    return o / gold_length + (o - 2 if o >= bonus_from else 0)


def outcome_units(pred: str, gold: str, *, bonus_from: int = 3, prefix_bonus: str = "released") -> tuple[float, int, bool]:
    """Hierarchical outcome in units of ``match_weight`` for two undotted codes: ``(units, O, exact)``."""
    if pred == gold:
        return float(len(gold)), len(gold), True
    o = common_prefix(pred, gold)
    return partial_units(o, len(gold), bonus_from=bonus_from, prefix_bonus=prefix_bonus), o, False


def best_same_letter(code: str, golds: list[str]) -> tuple[str, int] | None:
    """The authors' choice of gold code for a prediction that matches none exactly: among the gold codes with the
    prediction's first character, the longest common prefix wins, then the shorter code. None when no gold code
    starts with that character."""
    best: tuple[str, int] | None = None
    first = code[:1]
    for g in golds:
        if g[:1] != first:
            continue
        o = common_prefix(g, code)
        if best is None or o > best[1] or (o == best[1] and len(g) < len(best[0])):
            best = (g, o)
    return best


def gold_codes(gold: Any) -> list[str]:
    """Gold codes as undotted upper-case strings, in order. A string is one code (never a sequence of characters);
    a list or array holds several; a mapping is verl's ``reward_model`` (``ground_truth`` key)."""
    if gold is None:
        raise InputError("no gold code for a response: the data needs reward_model.ground_truth (or a 'code' column)")
    if isinstance(gold, str):
        items: Iterable[Any] = (gold,)
    elif isinstance(gold, Mapping):
        return gold_codes(gold.get("ground_truth"))
    else:
        items = list(gold)
    out = []
    for g in items:
        code = str(g).strip().upper().replace(".", "")
        if code:
            out.append(code)
    if not out:
        raise InputError(f"empty gold code {gold!r}")
    return out
