"""Reading predictions and gold tables, picking their columns, and joining them by id.

Predictions come from ``icdreason predict`` (JSONL, CSV, Parquet or a DuckDB log, read with
:func:`icdreason.records.read_predictions`) or any CSV/TSV/JSONL/Parquet table. Gold is a table of id -> code; when a
gold cell holds several codes (a list, or text separated by commas, semicolons, bars or whitespace) the first is the
target, as in the paper. Nested fields are addressed with dots (``confidence.code``, ``reward_model.ground_truth``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError

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
    "resolve_column",
]

PRED_COLUMNS = ("code", "prediction", "pred", "predicted", "predicted_code", "code_raw")
GOLD_COLUMNS = ("gold", "code", "label", "icd_code", "icd10", "codes", "target", "ground_truth",
                "reward_model.ground_truth")
GOLD_ID_COLUMNS = ("id", "extra_info.id", "hadm_id", "note_id")
DUPLICATE_POLICIES = ("error", "first", "last")
_SPLIT = re.compile(r"[\s,;|]+")


class Rows:
    """The rows of one file, column by column; ``get`` returns a Python list (None where a row lacks the field)."""

    def __init__(self, path: Path, *, dicts: list[dict] | None = None, table: Any = None):
        self.path = path
        self._dicts = dicts
        self._table = table
        if table is not None:
            self.columns = list(table.column_names)
            self.n = table.num_rows
        else:
            assert dicts is not None
            seen: dict[str, None] = {}
            for row in dicts[:2000]:
                _collect_paths(row, "", seen)
            self.columns = list(seen)
            self.n = len(dicts)

    def get(self, name: str) -> list:
        if self._table is not None:
            return self._table.column(name).to_pylist()
        parts = name.split(".")
        if len(parts) == 1:
            return [row.get(name) for row in self._dicts]
        return [_dig(row, parts) for row in self._dicts]

    def __len__(self) -> int:
        return self.n

    def select(self, keep: Sequence[bool]) -> Rows:
        """The rows where ``keep`` is true (e.g. one run of a DuckDB log)."""
        if self._table is not None:
            import pyarrow as pa

            return Rows(self.path, table=self._table.filter(pa.array(list(keep), type=pa.bool_())))
        return Rows(self.path, dicts=[d for d, k in zip(self._dicts, keep) if k])


def _collect_paths(value: dict, prefix: str, seen: dict[str, None]) -> None:
    for key, sub in value.items():
        name = f"{prefix}{key}"
        seen.setdefault(name)
        if isinstance(sub, dict):
            _collect_paths(sub, name + ".", seen)


def _dig(row: dict, parts: list[str]) -> Any:
    value: Any = row
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _flatten(table):
    import pyarrow as pa

    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _read_delimited(path: Path, delimiter: str):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    if not header:
        raise InputError(f"{path} has no header row: the first line must name the columns (e.g. id,code)")
    try:
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                 strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path} is not a readable {'TSV' if delimiter == chr(9) else 'CSV'} file: {exc}") from None


def read_rows(path: str | Path) -> Rows:
    """Read a predictions or gold file by extension: .jsonl/.json/.ndjson, .csv, .tsv/.tab, .parquet, .duckdb/.db."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a directory: give a .jsonl, .csv, .tsv, .parquet or .duckdb file")
    if p.stat().st_size == 0:
        raise InputError(f"{p} is empty: expected rows with an id and a code")
    suffix = p.suffix.lower()
    if suffix in (".duckdb", ".db", ".jsonl", ".ndjson", ".json"):
        from ..records import read_predictions

        if suffix == ".json" and p.read_text(encoding="utf-8").lstrip().startswith("["):
            dicts = json.loads(p.read_text(encoding="utf-8"))
        else:
            dicts = read_predictions(p)
        rows = Rows(p, dicts=[d for d in dicts if isinstance(d, dict)])
    elif suffix in (".csv", ".tsv", ".tab"):
        rows = Rows(p, table=_read_delimited(p, "," if suffix == ".csv" else "\t"))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = Rows(p, table=_flatten(pq.read_table(p)))
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise InputError(f"{p} is not a readable Parquet file: {exc}") from None
    else:
        raise InputError(f"cannot tell the format of {p}: use .jsonl, .csv, .tsv, .parquet or .duckdb")
    if len(rows) == 0:
        raise InputError(f"{p} has no rows")
    return rows


def resolve_column(rows: Rows, requested: str | None, candidates: Sequence[str], *, what: str, option: str) -> str:
    """The column to use: the one asked for, else the first candidate present. Errors list the columns there are."""
    if requested:
        if requested in rows.columns:
            return requested
        raise InputError(f"{rows.path} has no column {requested!r} (columns: {', '.join(rows.columns[:30])}): "
                         f"pass {option} with one of them")
    for name in candidates:
        if name in rows.columns:
            return name
    by_lower = {c.lower(): c for c in rows.columns}
    for name in candidates:  # spreadsheets like "ID", "Code"
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    raise InputError(f"cannot find the {what} column in {rows.path} (columns: {', '.join(rows.columns[:30])}): "
                     f"pass {option}")


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
        try:
            from .metrics import factorize

            idx, uniques = factorize(values)
        except Exception:  # mixed types further down: the plain loop below handles them
            pass
        else:
            import numpy as np

            mapped = np.empty(len(uniques) + 1, dtype=object)
            mapped[:-1] = [fn(u) for u in uniques]
            mapped[-1] = fn(None)
            return mapped[idx].tolist()
    return [fn(v) for v in values]


def _dedupe(ids: list[str | None], path: Path, policy: str, option_hint: str) -> tuple[list[int], int]:
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
    rows = read_rows(path)
    id_col = resolve_column(rows, id_column, GOLD_ID_COLUMNS, what="gold id", option="--gold-id-column")
    code_col = resolve_column(rows, code_column, tuple(c for c in GOLD_COLUMNS if c != id_col),
                              what="gold code", option="--gold-column")
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
    keep, gold.duplicates = _dedupe(ids, rows.path, duplicates, "--gold-id-column")
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


def _pred_code(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        return first_code(value)
    text = str(value).strip()
    return text or None


def join(gold: Gold, pred_ids: list[Any], pred_codes: list[Any], *, path: Path, duplicates: str = "error") -> Joined:
    """Align predictions to gold by id. Gold ids without a prediction get None (scored as NIL); extra ids are counted."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = clean_ids(pred_ids)
    keep, n_dups = _dedupe(ids, path, duplicates, "--id-column")
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
    codes = map_distinct(pred_codes, _pred_code)
    return Joined(
        codes=[codes[r] if r >= 0 else None for r in rows],
        rows=rows,
        missing=len(missing), missing_examples=missing[:5],
        unmatched=len(extra), unmatched_examples=[str(e) for e in extra[:5]],
        duplicates=n_dups, without_id=sum(1 for i in ids if i is None),
    )


def read_labels(path: str | Path, *, code_column: str | None = None) -> list[str]:
    """A fixed label vocabulary: a text file with one code per line (``#`` comments; the first token counts), or a
    table whose code column is found like the gold column (so a training file works as is)."""
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
        col = resolve_column(rows, code_column, GOLD_COLUMNS, what="label code", option="--gold-column")
        codes = [c for c in map_distinct(rows.get(col), first_code) if c]
    if not codes:
        raise InputError(f"labels file {p} holds no codes: one code per line, or a table with a code column")
    return codes
