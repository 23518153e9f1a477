"""Reading predictions and gold tables and joining them by id.

Predictions come from ``icdreason predict`` (JSONL, CSV, Parquet or a DuckDB log) or any table
:mod:`icdreason.tables` reads; gold codes are loaded by :func:`icdreason.gold.load_gold`. Nested fields are addressed
with dots (``confidence.code``, ``reward_model.ground_truth``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..gold import GOLD_COLUMNS, GOLD_ID_COLUMNS, Gold, clean_ids, dedupe, first_code, load_gold, map_distinct
from ..tables import Rows, pick_column
from ..tables import read_rows as read_table
from .answers import PRED_COLUMNS, pred_code
from .metrics import NIL

__all__ = [
    "GOLD_COLUMNS",
    "GOLD_ID_COLUMNS",
    "PRED_COLUMNS",
    "Gold",
    "Joined",
    "Rows",
    "first_code",
    "join",
    "load_gold",
    "read_labels",
    "read_rows",
]


def read_rows(path: str | Path) -> Rows:
    """A predictions (or gold) table, read column-wise (fast on millions of rows); an empty file is an error."""
    return read_table(path, columnar=True, torn_tail=True, required="rows with an id and a code")


@dataclass
class Joined:
    """Predictions aligned to the gold rows: ``rows[i]`` is the prediction row for gold row i, or -1 if missing."""

    codes: list[str | None]
    rows: list[int]
    missing: int
    missing_examples: list[str]
    unmatched: int
    unmatched_examples: list[str]
    duplicates: int
    without_id: int


def join(gold: Gold, pred_ids: list[Any], pred_codes: list[Any], *, path: Path, duplicates: str = "error") -> Joined:
    """Align predictions to gold by id. Gold ids without a prediction get None (scored as NIL); extra ids are counted."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = clean_ids(pred_ids)
    keep, n_dups = dedupe(ids, path, duplicates, "--id-column")
    kept = np.asarray(keep, dtype=np.int64)
    # Hash join in Arrow: position of each gold id among the kept prediction ids (null when absent).
    found = pc.index_in(pa.array(gold.ids, type=pa.string()),
                        value_set=pa.array([ids[i] for i in keep], type=pa.string()))
    pos = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    rows_arr = np.where(pos >= 0, kept[np.maximum(pos, 0)] if len(kept) else -1, -1)
    rows = rows_arr.tolist()
    matched = int((rows_arr >= 0).sum())
    if matched == 0:
        sample_p = ", ".join(repr(ids[i]) for i in keep[:3])
        sample_g = ", ".join(repr(g) for g in gold.ids[:3])
        raise InputError(f"no prediction id in {path} matches a gold id (predictions: {sample_p}; gold: {sample_g}): "
                         "check --id-column / --gold-id-column")
    used = np.zeros(len(ids), dtype=bool)
    used[rows_arr[rows_arr >= 0]] = True
    extra = [ids[i] for i in keep if not used[i]]
    missing = [g for g, r in zip(gold.ids, rows) if r < 0]
    codes = map_distinct(pred_codes, pred_code)
    return Joined(
        codes=[codes[r] if r >= 0 else None for r in rows],
        rows=rows,
        missing=len(missing), missing_examples=missing[:5],
        unmatched=len(extra), unmatched_examples=[str(e) for e in extra[:5]],
        duplicates=n_dups, without_id=sum(1 for i in ids if i is None),
    )


def read_labels(path: str | Path, *, code_column: str | None = None) -> list[str]:
    """A fixed label vocabulary: a text file with one code per line (``#`` comments; the first token counts), or a
    table whose code column is found like the gold column (so a training file works as is). An entry ``NIL`` (the
    DeepICD-R1 authors' label files list their NIL class) is left out: NIL is always a class of its own."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"labels file not found: {p}")
    if p.suffix.lower() in (".txt", ".lst", ".list", ""):
        codes = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            code = first_code(line) if line else None
            if code:
                codes.append(code)
    else:
        rows = read_rows(p)
        col = pick_column(rows.columns, code_column, GOLD_COLUMNS, source=rows.source, what="label code",
                          option="--gold-column")
        codes = [c for c in map_distinct(rows.get(col), first_code) if c]
    codes = [c for c in codes if c.strip().upper() != NIL]
    if not codes:
        raise InputError(f"labels file {p} holds no codes: one code per line, or a table with a code column")
    return codes
