"""Records as Arrow rows: the one schema of a Parquet record file, and the conversions both ways.

The schema comes from :data:`~icdreason.records.record.COLUMNS`: scalars are typed columns, lists are lists,
``confidence`` a struct of floats, ``top_k`` a list of ``{code, support}`` structs and ``parameters`` a struct of the
known run parameters (:data:`~icdreason.records.record.PARAMETER_KINDS`) with an ``extra`` map of JSON text for
every other key, and for a known key whose value is None or not of its type — so that a record's ``parameters``
read back equals what was written, key for key.
Files written before ``parameters`` was a struct hold it as JSON text: :func:`from_arrow` reads both.
"""

from __future__ import annotations

import json
from typing import Any

from .record import COLUMNS, PARAMETER_KINDS

__all__ = ["schema", "to_arrow", "from_arrow", "table_of", "conform"]

_FITS = {"int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
         "float64": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
         "bool": lambda v: isinstance(v, bool), "text": lambda v: isinstance(v, str)}


def schema(columns: tuple[str, ...]):
    """The Arrow schema of a record file with these columns."""
    import pyarrow as pa

    return pa.schema([(c, COLUMNS[c].arrow_type()) for c in columns])


def _parameters_in(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    struct: dict[str, Any] = dict.fromkeys(PARAMETER_KINDS)
    extra = []
    for key, item in dict(value).items():
        kind = PARAMETER_KINDS.get(key)
        if kind is not None and item is not None and _FITS[kind](item):
            struct[key] = float(item) if kind == "float64" else item
        else:  # an engine's own key, or a known key holding None or another type: kept exactly, as JSON
            extra.append((str(key), json.dumps(item, ensure_ascii=False)))
    struct["extra"] = extra
    return struct


def _parameters_out(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):  # written before parameters was a struct
        return json.loads(value) if value else {}
    out = {k: value[k] for k in PARAMETER_KINDS if value.get(k) is not None}
    for key, item in value.get("extra") or ():
        out[key] = json.loads(item)
    return out


def to_arrow(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """A record dict (``Record.to_dict()`` or a row read back) shaped for :func:`schema`."""
    out = {c: row.get(c) for c in columns}
    if "parameters" in out:
        out["parameters"] = _parameters_in(out["parameters"] or {})
    if "top_k" in out:
        out["top_k"] = [{"code": t.get("code"), "support": t.get("support")} for t in out["top_k"] or []]
    return out


def from_arrow(row: dict[str, Any]) -> dict[str, Any]:
    """A row of a Parquet record file (``to_pylist``) as a record dict: ``parameters`` decoded (struct or the older
    JSON text), a missing ``raw`` left out."""
    if "parameters" in row:
        row["parameters"] = _parameters_out(row["parameters"])
    if row.get("raw", 0) is None:
        del row["raw"]
    return row


def table_of(rows: list[dict[str, Any]], columns: tuple[str, ...]):
    """An Arrow table of record dicts."""
    import pyarrow as pa

    return pa.Table.from_pylist([to_arrow(r, columns) for r in rows], schema=schema(columns))


def conform(table, target):
    """``table`` (a part written with other columns, e.g. before ``--no-note``) with exactly ``target``'s columns:
    missing ones null, extra ones dropped."""
    import pyarrow as pa

    arrays = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
              for f in target]
    return pa.Table.from_arrays(arrays, schema=target)
