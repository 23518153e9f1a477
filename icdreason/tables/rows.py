"""Rows of a table (as row dicts or an Arrow table) and choosing one of their columns by name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .formats import BATCH_ROWS

__all__ = ["Rows", "pick_column"]


# -- picking a column --------------------------------------------------------------------------------------------
def _quoted(names: Sequence[str]) -> str:
    shown = [repr(n) for n in names[:12]] + (["..."] if len(names) > 12 else [])
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def pick_column(columns: Sequence[str], requested: str | None, candidates: Sequence[str], *, source: str,
                what: str, option: str, required: bool = True) -> str | None:
    """The column to use: ``requested`` (a flag's value) when given, else the first of ``candidates`` present (the
    exact name first, then in any letter case, for spreadsheets with "ID" or "Code").

    When none is found the error lists the names tried and the columns present; ``required=False`` returns None
    instead when nothing was requested.
    """
    if requested:
        if requested in columns:
            return requested
        tried: Sequence[str] = [requested]
    else:
        for name in candidates:
            if name in columns:
                return name
        by_lower = {c.lower(): c for c in columns}
        for name in candidates:
            if name.lower() in by_lower:
                return by_lower[name.lower()]
        if not required:
            return None
        tried = candidates
    present = ", ".join(columns[:30]) + (", ..." if len(columns) > 30 else "") or "none"
    named = f" {requested!r}" if requested else ""
    raise UsageError(f"no {what} column{named} in {source}: it has no column {_quoted(tried) if tried else 'named'}; "
                     f"choose one with {option} (columns: {present})")


# -- the rows of a table -----------------------------------------------------------------------------------------
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


def _arrow_paths(fields, prefix: str = "") -> list[str]:
    import pyarrow as pa

    names = []
    for f in fields:
        names.append(prefix + f.name)
        if pa.types.is_struct(f.type):
            names += _arrow_paths(list(f.type), prefix + f.name + ".")
    return names


class Rows:
    """The rows of one table, held as row dicts or as an Arrow table.

    ``columns`` names every column, nested fields with dots (``reward_model.ground_truth``); ``get`` returns one
    column as a list (None where a row lacks it); iterating gives row dicts; ``lines`` is the line each row starts
    on in a text file (None for Parquet and DuckDB).
    """

    def __init__(self, source: str, *, dicts: list[dict] | None = None, arrow: Any = None,
                 columns: Sequence[str] | None = None, lines: list[int] | None = None):
        self.source = source
        self.path = Path(source)
        self._dicts = dicts
        self._arrow = arrow
        self._flat = None
        self.lines = lines
        if arrow is not None:
            self.columns = _arrow_paths(arrow.schema)
            self.n = arrow.num_rows
        else:
            assert dicts is not None
            seen: dict[str, None] = dict.fromkeys(columns or ())
            for row in dicts:  # top-level names of every row; nested ones from the first rows
                seen.update(dict.fromkeys(row))
            for row in dicts[:2000]:
                _collect_paths(row, "", seen)
            self.columns = list(seen)
            self.n = len(dicts)

    def get(self, name: str) -> list:
        """One column as a list; nested fields by dotted name."""
        if self._arrow is not None:
            if name in self._arrow.column_names:
                return self._arrow.column(name).to_pylist()
            if self._flat is None:
                import pyarrow as pa

                self._flat = self._arrow
                while any(pa.types.is_struct(f.type) for f in self._flat.schema):
                    self._flat = self._flat.flatten()
            return self._flat.column(name).to_pylist()
        if "." not in name:
            return [row.get(name) for row in self._dicts]
        parts = name.split(".")
        return [row[name] if name in row else _dig(row, parts) for row in self._dicts]

    def __iter__(self) -> Iterator[dict]:
        if self._arrow is None:
            yield from self._dicts
        else:
            for batch in self._arrow.to_batches(BATCH_ROWS):
                yield from batch.to_pylist()

    def __len__(self) -> int:
        return self.n

    def select(self, keep: Sequence[bool]) -> Rows:
        """The rows where ``keep`` is true (e.g. one run of a DuckDB log)."""
        if self._arrow is not None:
            import pyarrow as pa

            return Rows(self.source, arrow=self._arrow.filter(pa.array(list(keep), type=pa.bool_())))
        lines = [n for n, k in zip(self.lines, keep) if k] if self.lines is not None else None
        return Rows(self.source, dicts=[d for d, k in zip(self._dicts, keep) if k], columns=self.columns,
                    lines=lines)
