"""The readers of each table format: JSONL and CSV/TSV text (csv module, standard dialect), Parquet and CSV through
Arrow, DuckDB tables. :mod:`icdreason.tables.read` puts them behind one interface."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..encodable import make_encodable, may_hold_surrogates
from ..errors import InputError
from .cells import restore, restore_arrow

DELIMITERS = {"csv": ",", "tsv": "\t"}
BATCH_ROWS = 4096

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # notes are long: a CSV cell may hold a whole discharge summary


def check_file(path: Path) -> None:
    """A one-line error unless ``path`` is an existing file."""
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory: give a .jsonl, .csv, .tsv, .parquet or .duckdb file")


# -- text formats ------------------------------------------------------------------------------------------------
def open_text(path: Path, data: bytes | None, errors: str, newline: str | None) -> TextIO:
    """The file (or ``data``) as text: UTF-8, a byte-order mark dropped."""
    if data is not None:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors=errors, newline=newline)
    try:
        return open(path, encoding="utf-8-sig", errors=errors, newline=newline)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def not_utf8(source: str) -> InputError:
    """The error for a file that is not UTF-8 text."""
    return InputError(f"{source} is not UTF-8 text: save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet)")


_MAX_INT_DIGITS = 4000  # below Python's limit on converting digits to an int (4300)


def _int_or_digits(digits: str) -> int | str:
    """A JSON integer as an int, or as its digits when it is too long for one (a 5,000-digit id stays an id)."""
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else digits


def parse_json(text: str) -> Any:
    """``json.loads`` for data from files: over-long integers kept as their digits, and any lone surrogate the text
    escapes (``"\\ud83d"``, half a character) replaced by U+FFFD — no file, Arrow array or DuckDB column can hold
    one."""
    value = json.loads(text, parse_int=_int_or_digits)
    return make_encodable(value)[0] if may_hold_surrogates(text) else value


def jsonl_items(fh: TextIO, source: str, *, torn_tail: bool, bad_lines: str) -> Iterator[tuple[int, dict]]:
    """(line, object) of each JSON line (or each object of a file holding one JSON array).

    ``fh`` must split lines at ``\\n`` only (see :func:`numbered_rows`): U+2028 and U+0085 are text inside a JSON
    string and a CR is whitespace between its tokens, never the end of a line."""
    first = fh.readline()
    if first.lstrip().startswith("["):  # a .json file holding one array of objects
        try:
            items = parse_json(first + fh.read())
        except json.JSONDecodeError as exc:
            raise InputError(f"{source} is not valid JSON ({exc}): write one JSON object per line") from None
        for n, item in enumerate(items if isinstance(items, list) else [], 1):
            if isinstance(item, dict):
                yield n, item
        return
    line_no = 0
    for line in itertools.chain([first] if first else [], fh):
        line_no += 1
        if not line.strip():
            continue
        try:
            row = parse_json(line)
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
        except ValueError as exc:
            if torn_tail and not line.endswith("\n") and isinstance(exc, json.JSONDecodeError):
                return  # a torn last line from a killed writer: not a row
            why = f"line {line_no} is not a JSON object ({exc})"
            if bad_lines == "keep":
                yield line_no, {"__error": why}
                continue
            raise InputError(f"{source}:{line_no} is not a JSON object ({exc}): fix or remove the line") from None
        yield line_no, row


def _delimiter(header: str, delimiters: str) -> str:
    """The delimiter that splits the header line into the most fields (standard quoting, so never misread)."""
    best, most = delimiters[0], 0
    for d in delimiters:
        fields = next(csv.reader([header], delimiter=d), [])
        if len(fields) > most:
            best, most = d, len(fields)
    return best


_DELIMITER_NAMES = {",": "a comma", ";": "a semicolon", "\t": "a tab"}


def csv_items(fh: TextIO, source: str, delimiters: str, *,
              bad_lines: str = "raise") -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """The header and (starting line, row) of each record; blank records are skipped.

    A record with more (non-empty) fields than the header was misread — usually a field holding the delimiter
    without quotes — and is never cut short silently: an error naming the line, or with ``bad_lines="keep"`` the
    row ``{"__error": why}``.
    """
    lines: Iterator[str] = fh
    delimiter = delimiters
    if len(delimiters) > 1:
        first = fh.readline()
        delimiter = _delimiter(first, delimiters)
        lines = itertools.chain([first], fh)
    reader = csv.reader(lines, dialect="excel", delimiter=delimiter)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise InputError(f"{source} is not a readable CSV file ({exc})") from None

    def items() -> Iterator[tuple[int, dict]]:
        end = reader.line_num
        try:
            for values in reader:
                start, end = end + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue
                if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
                    why = (f"{len(values)} fields but the header has {len(header)}: put a field that contains "
                           f"{_DELIMITER_NAMES.get(delimiter, repr(delimiter))} in double quotes")
                    if bad_lines == "keep":
                        yield start, {"__error": why}
                        continue
                    raise InputError(f"{source}:{start} has {why}")
                yield start, {name: (restore(values[i]) if i < len(values) else None) for i, name in enumerate(header)}
        except csv.Error as exc:
            raise InputError(f"{source}:{end + 1} is not a readable CSV record ({exc})") from None

    return header, items()


def numbered_rows(path: Path, fmt: str, *, source: str, data: bytes | None, errors: str, torn_tail: bool,
              bad_lines: str, delimiters: str | None) -> tuple[list[str] | None, Iterator[tuple[int, dict]]]:
    """(header or None, (line, row) items) of a JSONL or CSV/TSV table."""
    if fmt == "jsonl":
        fh = open_text(path, data, errors, "\n")  # lines end at \n only (in \r\n the \r is JSON whitespace)
        return None, _closing(fh, jsonl_items(fh, source, torn_tail=torn_tail, bad_lines=bad_lines), source)
    fh = open_text(path, data, errors, "")
    try:
        header, items = csv_items(fh, source, delimiters or DELIMITERS[fmt], bad_lines=bad_lines)
    except UnicodeDecodeError:
        fh.close()
        raise not_utf8(source) from None
    return header, _closing(fh, items, source)


def _closing(fh: TextIO, items: Iterator[tuple[int, dict]], source: str) -> Iterator[tuple[int, dict]]:
    with fh:
        try:
            yield from items
        except UnicodeDecodeError:
            raise not_utf8(source) from None


# -- Arrow --------------------------------------------------------------------------------------------------------
def parquet_file(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def arrow_csv(path: Path, delimiter: str):
    """A CSV/TSV file as an Arrow table of text columns (the standard dialect; Arrow skips a byte-order mark)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open_text(path, None, "strict", "") as fh:
        try:
            header = next(csv.reader(fh, delimiter=delimiter), None)
        except UnicodeDecodeError:
            raise not_utf8(str(path)) from None
    if not header:
        raise InputError(f"{path} has no header row: the first line must name the columns (e.g. id,code)")
    def read(block_size: int | None):
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block_size) if block_size else None,
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                 strings_can_be_null=True),
        )

    try:
        try:
            table = read(None)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            table = read(min(path.stat().st_size + 1, 2**31 - 1))  # a row longer than a block: a note of megabytes
        return pa.Table.from_arrays([restore_arrow(c) for c in table.columns], schema=table.schema)
    except pa.ArrowInvalid as exc:
        what = "TSV" if delimiter == "\t" else "CSV"
        raise InputError(f"{path} is not a readable {what} file: {str(exc).splitlines()[0]}") from None


# -- DuckDB ------------------------------------------------------------------------------------------------------
def duckdb_connect(path: Path):
    from ..db import Store, connect

    return connect(path, Store("DuckDB file", (), InputError, "choose another file"), read_only=True)


def table_sql(con, path: Path, table: str) -> str:
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'main' ORDER BY table_name").fetchall()]
    if table not in tables:
        if table == "predictions":
            raise InputError(f"{path} has no predictions table: is it a --db file written by `icdreason predict`? "
                             f"(tables: {', '.join(tables) or 'none'})")
        raise InputError(f"{path} has no table {table!r} (tables: {', '.join(tables) or 'none'})")
    return 'SELECT * FROM "' + table.replace('"', '""') + '"'


def duckdb_rows(con, sql: str, params: Sequence[Any] = (), *, batch_size: int = BATCH_ROWS) -> Iterator[list[dict]]:
    """The result of ``sql`` as batches of row dicts, JSON columns decoded."""
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    json_cols = [i for i, d in enumerate(cur.description) if str(d[1]) == "JSON"]
    while True:
        fetched = cur.fetchmany(batch_size)
        if not fetched:
            return
        batch = []
        for values in fetched:
            if json_cols:
                values = list(values)
                for i in json_cols:
                    if isinstance(values[i], str):
                        values[i] = json.loads(values[i])
            batch.append(dict(zip(names, values)))
        yield batch
