"""Gold codes: the table of note id -> target code that predictions and rewards are scored against.

One loader for every command that takes a gold file (``icdreason eval --gold``, ``icdreason reward score --gold``):
any table :mod:`icdreason.tables` reads (JSONL, CSV/TSV, Parquet, a DuckDB file's ``predictions`` table), with the id
in ``id`` (or ``extra_info.id``, ``hadm_id``, ``note_id``) and the code in ``gold``, ``code``, ``ground_truth`` or
another usual name -- the RL Parquet of ``icdreason data prepare`` (``extra_info.id``, ``reward_model.ground_truth``)
works as is. When a gold cell holds several codes (a list, or text separated by commas, semicolons, bars or
whitespace) the first is the target, as in the paper.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, UsageError
from .tables import pick_column, read_rows

__all__ = ["GOLD_COLUMNS", "GOLD_ID_COLUMNS", "DUPLICATE_POLICIES", "Gold", "load_gold", "gold_codes",
           "first_code", "clean_ids", "map_distinct", "dedupe"]

GOLD_COLUMNS = ("gold", "gold_code", "code", "label", "icd_code", "icd10", "codes", "target", "ground_truth",
                "reward_model.ground_truth", "icd_codes")  # icd_codes: the DeepICD-R1 authors' evaluation files
GOLD_ID_COLUMNS = ("id", "extra_info.id", "hadm_id", "note_id")
DUPLICATE_POLICIES = ("error", "first", "last")
_SPLIT = re.compile(r"[\s,;|]+")


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def first_code(value: Any) -> str | None:
    """The target code of a gold cell: the first of a list, or of text separated by ``, ; |`` or whitespace."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            code = first_code(item)
            if code:
                return code
        return None
    text = str(value).strip().strip("[](){}")
    for token in _SPLIT.split(text):
        token = token.strip("\"'`")
        if token:
            return token
    return None


def clean_ids(values: list) -> list[str | None]:
    """Ids as stripped strings (None when missing or blank); ``1.0`` from a float column becomes ``"1"``."""
    if values and all(isinstance(v, str) or v is None for v in values[:1000]):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            arr = pc.utf8_trim_whitespace(pa.array(values, type=pa.string()))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        else:
            return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr).to_pylist()
    return [_id(v) for v in values]


def map_distinct(values: list, fn) -> list:
    """``[fn(v) for v in values]``, calling ``fn`` once per distinct value when the values are strings."""
    if values and all(isinstance(v, str) or v is None for v in values[:1000]):
        import numpy as np
        import pyarrow as pa

        try:
            encoded = pa.array(values, type=pa.string()).dictionary_encode()
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types further down: the plain loop below handles them
            pass
        else:
            distinct = encoded.dictionary.to_pylist()
            mapped = np.empty(len(distinct) + 1, dtype=object)
            mapped[:-1] = [fn(u) for u in distinct]
            mapped[-1] = fn(None)
            idx = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
            return mapped[idx].tolist()
    return [fn(v) for v in values]


def dedupe(ids: list[str | None], path: Path | str, policy: str, option_hint: str) -> tuple[list[int], int]:
    """Indices of the rows to keep (rows with an id, one per id by ``policy``) and the number of duplicates."""
    if policy not in DUPLICATE_POLICIES:
        raise UsageError(f"unknown --duplicates {policy!r}: choose one of {', '.join(DUPLICATE_POLICIES)}")
    distinct = set(ids)
    distinct.discard(None)
    blanks = ids.count(None)
    if len(distinct) == len(ids) - blanks:  # the usual case: no duplicates
        return (list(range(len(ids))) if not blanks else [i for i, k in enumerate(ids) if k is not None]), 0
    where: dict[str, int] = {}
    dups: dict[str, int] = {}
    for i, key in enumerate(ids):
        if key is None:
            continue
        if key in where:
            dups[key] = dups.get(key, 1) + 1
            if policy == "last":
                where[key] = i
        else:
            where[key] = i
    if dups and policy == "error":
        examples = ", ".join(f"{k!r} ({n}x)" for k, n in list(dups.items())[:5])
        raise InputError(f"{path} has {len(dups)} duplicated id(s), e.g. {examples}: remove them, check "
                         f"{option_hint}, or pass --duplicates first|last")
    keep = sorted(where.values())
    return keep, sum(n - 1 for n in dups.values())


@dataclass
class Gold:
    """Gold ids and target codes (first code of each cell), one row per id, in file order."""

    path: Path
    ids: list[str]
    codes: list[str]
    id_column: str
    code_column: str
    rows: int
    without_code: int = 0
    without_id: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)


def load_gold(path: str | Path, *, id_column: str | None = None, code_column: str | None = None,
              duplicates: str = "error") -> Gold:
    """Read the gold table; rows without an id or a code are dropped and reported in ``warnings``."""
    rows = read_rows(path, columnar=True, torn_tail=True, required="rows with an id and a code")
    id_col = pick_column(rows.columns, id_column, GOLD_ID_COLUMNS, source=rows.source, what="gold id",
                         option="--gold-id-column")
    code_col = pick_column(rows.columns, code_column, tuple(c for c in GOLD_COLUMNS if c != id_col),
                           source=rows.source, what="gold code", option="--gold-column")
    raw_ids = clean_ids(rows.get(id_col))
    raw_codes = map_distinct(rows.get(code_col), first_code)
    gold = Gold(rows.path, [], [], id_col, code_col, len(rows))
    ids: list[str | None] = []
    for key, code in zip(raw_ids, raw_codes):
        if key is None:
            gold.without_id += 1
            ids.append(None)
        elif code is None:
            gold.without_code += 1
            ids.append(None)
        else:
            ids.append(key)
    keep, gold.duplicates = dedupe(ids, rows.path, duplicates, "--gold-id-column")
    gold.ids = [ids[i] for i in keep]
    gold.codes = [raw_codes[i] for i in keep]
    if not gold.ids:
        raise InputError(f"{rows.path} has no row with both an id ({id_col!r}) and a code ({code_col!r}): "
                         "check --gold-id-column / --gold-column")
    if gold.without_id:
        gold.warnings.append(f"{gold.without_id} gold row(s) without an id were skipped")
    if gold.without_code:
        gold.warnings.append(f"{gold.without_code} gold row(s) without a code were skipped (nothing to score against)")
    if gold.duplicates:
        gold.warnings.append(f"{gold.duplicates} duplicated gold row(s) dropped (--duplicates {duplicates})")
    return gold


def gold_codes(path: str | Path, *, id_column: str | None = None, code_column: str | None = None) -> dict[str, str]:
    """``{id: target code}`` of a gold table (the last row wins when an id repeats)."""
    gold = load_gold(path, id_column=id_column, code_column=code_column, duplicates="last")
    return dict(zip(gold.ids, gold.codes))
