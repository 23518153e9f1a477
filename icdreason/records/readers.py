"""Reading prediction records back from any output format: :func:`read_predictions`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..tables import FORMATS, iter_batches
from .arrow import from_arrow
from .record import COLUMNS, upgrade_row

__all__ = ["read_predictions", "from_csv_row"]


def from_csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row (all text) with its record columns typed; other columns stay text (None when empty)."""
    return {k: (COLUMNS[k].from_csv(v) if k in COLUMNS else v or None) for k, v in row.items()}


def read_predictions(path: str | os.PathLike[str], *, run_id: str | None = None) -> list[dict[str, Any]]:
    """Read prediction records from a JSONL, CSV, Parquet or DuckDB (``predictions`` table) file, in written order.

    Lists and dicts come back decoded in every format; a torn last JSONL line (a killed writer) is left out.
    ``run_id`` keeps one run (useful for DuckDB logs). Records of earlier versions come back as this version writes
    them (:func:`~icdreason.records.record.upgrade_row`).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"predictions file not found: {p}")
    kind = FORMATS.get(p.suffix.lower(), "jsonl")  # what format_for writes for any other name
    if kind == "duckdb":
        from .db import read_db_predictions

        return read_db_predictions(p, run_id=run_id)
    decode = {"csv": from_csv_row, "tsv": from_csv_row, "parquet": from_arrow}.get(kind)
    rows = []
    for batch in iter_batches(p, fmt=kind, torn_tail=True):
        rows += [decode(r) for r in batch] if decode else batch
    if run_id is not None:
        rows = [r for r in rows if r.get("run_id") == run_id]
    return [upgrade_row(r) for r in rows]
