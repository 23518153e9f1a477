"""Which answer of a predictions row is scored: the strict reading (the default) or the salvaged one (``--salvage``).

**The response of a row** is, in this order:

1. the text in the response column (``--response-column``; by default ``response``, else ``raw``, the list of raw
   model outputs that ``icdreason predict --keep-raw`` records). A list of one text is that text; a list of several
   (``predict -n N``, self-consistency) is read sample by sample, see below;
2. when the row has no response, its ``format_ok`` (the format check ``icdreason predict`` recorded);
3. when it has neither, nothing: its answer column is scored as given, and counted as unchecked -- except a record of
   an engine without a language model (``uses_llm`` false, the retriever): it has no model output to check, its
   answer is scored as given and counted apart (``no model``), whatever ``format_ok`` an older version wrote.

**Strict** (the DeepICD-R1 authors' evaluation, :func:`icdreason.parse.strict_answer`): a response's answer is the
diagnosis text of its first think/diagnosis pair (``"<think>" + response``, pairs start a line), stripped, dots
removed; a response without a pair has no answer (NIL at every level). Several samples: the majority
(:func:`icdreason.vote.vote`) over the samples whose strict answer is a well-formed code. A row judged by
``format_ok`` keeps its answer column's code when ``format_ok`` is true and has no answer otherwise.

**Salvaged** (what ``icdreason eval`` scored before strict became the default): the answer column as given (the
tolerant parse of ``icdreason predict``, :func:`icdreason.parse.parse_response`); for a file that has responses but
no answer column, the tolerant parse of each response.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..codes import ICD10CM_PATTERN, normalize
from ..gold import first_code, map_distinct
from ..parse import parse_response, strict_answer
from ..tables import Rows, pick_column
from .breakdowns import truthy

__all__ = ["BASES", "NO_RESPONSE", "PRED_COLUMNS", "RESPONSE_COLUMNS", "Answers", "pred_code", "read_answers", "sample_texts"]

#: Where the answer (the predicted code) is looked for, in this order.
PRED_COLUMNS = ("code", "prediction", "pred", "predicted", "predicted_code", "code_raw")
RESPONSE_COLUMNS = ("response", "raw")
#: ``--response-column none``: ignore responses, judge rows by ``format_ok`` (or score them as given).
NO_RESPONSE = "none"
#: How a row's strict answer was decided (see the module docstring).
BASES = ("response", "format_ok", "no model", "as given")


@dataclass
class Answers:
    """The scored answer of every predictions row under one scoring, and how each was decided."""

    scoring: str  # "strict" | "salvaged"
    codes: list[str | None]
    pred_column: str | None
    response_column: str | None
    basis: list[str]  # per row: "response" | "format_ok" | "no model" | "as given"
    salvageable: list[bool] | None = None  # strict: no answer here, but a salvaged code (None: not computed)

    def summary(self, rows: list[int]) -> dict[str, Any]:
        """Counts over the scored rows (``rows``: the prediction row of each gold id, -1 when it has none)."""
        scored = [r for r in rows if r >= 0]
        basis = Counter(self.basis[r] for r in scored)
        out: dict[str, Any] = {
            "mode": self.scoring, "response_column": self.response_column, "pred_column": self.pred_column,
            "basis": {key: basis.get(key, 0) for key in BASES},
            "no_answer": sum(1 for r in scored if self.codes[r] is None),
        }
        if self.scoring == "strict":
            flags = self.salvageable
            out["salvageable"] = None if flags is None else sum(1 for r in scored if flags[r])
        return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sample_texts(value: Any) -> list[str] | None:
    """The response text(s) of one cell: a string is one response; a list (``raw``) one per sample; a JSON list in
    a text cell (``raw`` read back from CSV) is decoded. None when the cell holds no response."""
    if _missing(value):
        return None
    if isinstance(value, str):
        if value.startswith("[") and value.endswith("]"):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = None
            if isinstance(decoded, list) and all(isinstance(t, str) for t in decoded):
                return decoded or None
        return [value]
    if isinstance(value, (list, tuple)):
        texts = [t for t in value if isinstance(t, str)]
        return texts or None
    return None


def _well_formed(code: str | None) -> str | None:
    if not code:
        return None
    norm = normalize(code)
    return code if norm and ICD10CM_PATTERN.match(norm) else None


def _majority(codes: list[str | None]) -> str | None:
    from ..vote import vote

    return vote([_well_formed(c) for c in codes]).code


def _read(texts: list[str], parse) -> str | None:
    if len(texts) == 1:
        return parse(texts[0])
    return _majority([parse(t) for t in texts])


def _strict_parse(text: str) -> str | None:
    return strict_answer(text) or None  # an empty diagnosis block is no answer either


def _salvage_parse(text: str) -> str | None:
    return parse_response(text).code


def pred_code(value: Any) -> str | None:
    """The answer in an answer-column cell: stripped text, the first code of a list; None when blank."""
    if _missing(value):
        return None
    if isinstance(value, (list, tuple)):
        return first_code(value)
    text = str(value).strip()
    return text or None


def _columns(rows: Rows, pred_column: str | None, response_column: str | None) -> tuple[str | None, str | None]:
    """(answer column, response column) of a predictions table; at least one of them."""
    if response_column == NO_RESPONSE:
        response = None
    elif response_column:
        response = pick_column(rows.columns, response_column, (), source=rows.source, what="response",
                               option="--response-column")
    else:
        response = next((c for c in RESPONSE_COLUMNS if c in rows.columns), None)
    if pred_column is None and response is not None and not any(c in rows.columns for c in PRED_COLUMNS):
        return None, response  # responses only: strict and salvaged answers both come from them
    pred = pick_column(rows.columns, pred_column, PRED_COLUMNS, source=rows.source, what="predicted code",
                       option="--prediction-column")
    return pred, response


def read_answers(rows: Rows, *, pred_column: str | None = None, response_column: str | None = None,
                 salvage: bool = False) -> dict[str, Answers]:
    """The strict answers of every row, and the salvaged ones too when ``salvage`` (see the module docstring)."""
    pred_col, resp_col = _columns(rows, pred_column, response_column)
    n = len(rows)
    given = map_distinct(rows.get(pred_col), pred_code) if pred_col else [None] * n
    responses = [sample_texts(v) for v in rows.get(resp_col)] if resp_col else [None] * n
    checked = "format_ok" in rows.columns and pred_col != "format_ok"
    format_ok = map_distinct(rows.get("format_ok"), truthy) if checked else [None] * n
    no_model = [v is False for v in map_distinct(rows.get("uses_llm"), truthy)] if "uses_llm" in rows.columns \
        else [False] * n
    strict, basis = [], []
    for texts, ok, code, bare in zip(responses, format_ok, given, no_model):
        if texts is not None and not bare:
            strict.append(_read(texts, _strict_parse))
            basis.append("response")
        elif bare:  # the retriever: no model output, nothing to check
            strict.append(code)
            basis.append("no model")
        elif ok is not None:
            strict.append(code if ok else None)
            basis.append("format_ok")
        else:
            strict.append(code)
            basis.append("as given")
    salvaged: list[str | None] | None = None
    salvaged_basis: list[str] = []
    if pred_col is not None:
        salvaged, salvaged_basis = given, ["as given"] * n
    elif salvage:  # responses only: the salvaged answer is the tolerant parse of each response
        salvaged = [_read(texts, _salvage_parse) if texts is not None else None for texts in responses]
        salvaged_basis = ["response"] * n
    salvageable = [s is None and v is not None for s, v in zip(strict, salvaged)] if salvaged is not None else None
    out = {"strict": Answers("strict", strict, pred_col, resp_col, basis, salvageable)}
    if salvage and salvaged is not None:
        out["salvaged"] = Answers("salvaged", salvaged, pred_col, resp_col, salvaged_basis)
    return out
