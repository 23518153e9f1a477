"""Reading a table whatever its format: :func:`read_rows` (whole, as :class:`Rows`), :func:`iter_batches` and
:func:`iter_rows` (streamed), and :func:`read_codes_file` (the one rule for files of codes)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from .formats import (BATCH_ROWS, DELIMITERS, arrow_csv, check_file, duckdb_connect, duckdb_rows, not_utf8,
                      numbered_rows, open_text, parquet_file, table_sql)
from .rows import Rows, pick_column

__all__ = ["FORMATS", "CODE_COLUMNS", "table_format", "read_rows", "iter_batches", "iter_rows", "stream_rows",
           "read_codes_file"]

#: File extension -> table format.
FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
                           ".tab": "tsv", ".parquet": "parquet", ".duckdb": "duckdb", ".db": "duckdb"}


def table_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The table format of ``path``: ``fmt`` when given, else from the extension."""
    if fmt:
        if fmt not in DELIMITERS and fmt not in ("jsonl", "parquet", "duckdb"):
            raise UsageError(f"unknown table format {fmt!r}: choose jsonl, csv, tsv, parquet or duckdb")
        return fmt
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise InputError(f"cannot tell the table format of {path} from its extension: use .jsonl, .csv, .tsv, "
                         ".parquet or .duckdb")
    return kind


def iter_batches(path: str | os.PathLike[str], *, fmt: str | None = None, table: str | None = None,
                 batch_size: int = BATCH_ROWS, torn_tail: bool = False) -> Iterator[list[dict]]:
    """The rows of a table as lists of row dicts, ``batch_size`` at a time: Parquet by record batches and DuckDB by
    ``fetchmany``, so a large file is never held whole; JSONL and CSV line by line."""
    p = Path(path).expanduser()
    check_file(p)
    kind = table_format(p, fmt)
    if kind == "parquet":
        for batch in parquet_file(p).iter_batches(batch_size=batch_size):
            yield batch.to_pylist()
        return
    if kind == "duckdb":
        con = duckdb_connect(p)
        try:
            yield from duckdb_rows(con, table_sql(con, p, table or "predictions"), batch_size=batch_size)
        finally:
            con.close()
        return
    _, items = numbered_rows(p, kind, source=str(p), data=None, errors="strict", torn_tail=torn_tail,
                         bad_lines="raise", delimiters=None)
    batch: list[dict] = []
    for _, row in items:
        batch.append(row)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_rows(path: str | os.PathLike[str], **options: Any) -> Iterator[dict]:
    """The rows of a table one by one (streamed: see :func:`iter_batches`, which takes the same options)."""
    for batch in iter_batches(path, **options):
        yield from batch


def stream_rows(path: str | os.PathLike[str], *, fmt: str | None = None, data: bytes | None = None,
                source: str | None = None, errors: str = "strict", bad_lines: str = "raise",
                columns: list[str] | None = None,
                batch_size: int = BATCH_ROWS) -> tuple[list[str] | None, Iterator[tuple[int, dict]]]:
    """A JSONL, CSV/TSV or Parquet table as ``(columns, items)`` without reading it whole: ``items`` yields
    ``(line, row)`` as the file is read (the row's number for Parquet, read ``batch_size`` rows at a time).

    ``columns`` is the header of a CSV or the schema's top-level names of a Parquet file, None for JSONL (whose rows
    may differ). ``columns`` given restricts a Parquet file to those columns (the others are never read). ``data``,
    ``errors`` and ``bad_lines`` as in :func:`read_rows`.
    """
    p = Path(path).expanduser()
    source = source or str(p)
    if data is None:
        check_file(p)
    kind = table_format(p, fmt)
    if kind == "parquet":
        parquet = parquet_file(p)
        names = list(parquet.schema_arrow.names)

        def items() -> Iterator[tuple[int, dict]]:
            n = 0
            try:
                for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
                    for row in batch.to_pylist():
                        n += 1
                        yield n, row
            except OSError as exc:  # a damaged row group
                raise InputError(f"{source} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None

        return names, items()
    if kind not in ("jsonl", *DELIMITERS):
        raise InputError(f"{source}: a {kind} file cannot be streamed as a table of rows here")
    return numbered_rows(p, kind, source=source, data=data, errors=errors, torn_tail=False, bad_lines=bad_lines,
                         delimiters=None)


def parquet_rows(path: str | os.PathLike[str]) -> int:
    """The number of rows of a Parquet file, from its footer (no row is read)."""
    return parquet_file(Path(path).expanduser()).metadata.num_rows


def read_rows(path: str | os.PathLike[str], *, fmt: str | None = None, table: str | None = None,
              data: bytes | None = None, source: str | None = None, columnar: bool = False, errors: str = "strict",
              torn_tail: bool = False, bad_lines: str = "raise", delimiters: str | None = None,
              required: str | None = None) -> Rows:
    """Read a whole table into :class:`Rows`.

    ``data`` holds the file's bytes when they come from stdin (``source`` names them in messages). ``columnar``
    reads CSV/TSV with Arrow (fast; no line numbers). ``errors="replace"`` reads text that is not UTF-8 with
    replacement characters instead of failing. ``bad_lines="keep"`` turns a JSONL line that is not a JSON object,
    or a CSV record with more fields than the header, into a row ``{"__error": why}`` instead of failing. ``delimiters`` (e.g. ``",;\\t"``) lets a CSV file use any of
    them: the one that splits the header into the most fields wins. ``required`` (what the rows should hold)
    makes an empty file or a table without rows an error.
    """
    p = Path(path).expanduser()
    source = source or str(p)
    if data is None:
        check_file(p)
    if required and (p.stat().st_size if data is None else len(data)) == 0:
        raise InputError(f"{source} is empty: expected {required}")
    rows = _read(p, table_format(p, fmt), source=source, table=table, data=data, columnar=columnar, errors=errors,
                 torn_tail=torn_tail, bad_lines=bad_lines, delimiters=delimiters)
    if required and len(rows) == 0:
        raise InputError(f"{source} has no rows: expected {required}")
    return rows


def _read(p: Path, kind: str, *, source: str, table: str | None, data: bytes | None, columnar: bool, errors: str,
          torn_tail: bool, bad_lines: str, delimiters: str | None) -> Rows:
    if kind == "parquet":
        parquet = parquet_file(p)
        try:
            return Rows(source, arrow=parquet.read())
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{source} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if kind == "duckdb":
        return Rows(source, dicts=[r for batch in iter_batches(p, fmt=kind, table=table) for r in batch])
    if kind in DELIMITERS and columnar and data is None and errors == "strict" and not delimiters:
        return Rows(source, arrow=arrow_csv(p, DELIMITERS[kind]))
    header, items = numbered_rows(p, kind, source=source, data=data, errors=errors, torn_tail=torn_tail,
                              bad_lines=bad_lines, delimiters=delimiters)
    lines, dicts = [], []
    for n, row in items:
        lines.append(n)
        dicts.append(row)
    return Rows(source, dicts=dicts, columns=header, lines=lines)


# -- lists of codes ----------------------------------------------------------------------------------------------
#: Usual names of a column of codes in a table given to ``validate --file`` or ``scrape symptoms --codes``.
CODE_COLUMNS = ("code", "codes", "icd_code", "icd10")
_CODE_SEPARATORS = re.compile(r"[\s,;]+")


def read_codes_file(path: str | os.PathLike[str], column: str | None = None) -> list[str]:
    """The codes listed in a file, in order.

    A table (.jsonl, .csv, .tsv, .parquet, .duckdb; any file when ``column`` is given, read as CSV) gives one code
    per row from ``column``, else from a column named code, codes, icd_code or icd10, else from its only column.
    Any other file is text: codes separated by whitespace, commas or semicolons, ``#`` starting a comment.
    """
    p = Path(path).expanduser()
    check_file(p)
    is_table = p.suffix.lower() in FORMATS
    if is_table or column:
        rows = read_rows(p, fmt=None if is_table else "csv")
        candidates = rows.columns if len(rows.columns) == 1 else CODE_COLUMNS
        name = pick_column(rows.columns, column, candidates, source=str(p), what="code", option="--column")
        return ["" if v is None else str(v) for v in rows.get(name)]
    with open_text(p, None, "strict", None) as fh:
        try:
            text = fh.read()
        except UnicodeDecodeError:
            raise not_utf8(str(p)) from None
    return [code for line in text.splitlines() for code in _CODE_SEPARATORS.split(line.split("#", 1)[0]) if code]
