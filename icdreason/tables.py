"""Reading tables: the rows of a JSONL, CSV/TSV, Parquet or DuckDB file, and choosing a column by name.

Every input that is a table (notes, predictions, gold codes, codes to validate, audit decisions, distillation
examples) is read here, so the formats, the CSV dialect and the error messages are the same everywhere:

- **JSONL** (``.jsonl``, ``.ndjson``, ``.json``; a ``.json`` file holding one array works too): one JSON object per
  line. ``torn_tail=True`` ignores an unterminated last line that is not JSON: what a killed writer leaves behind.
- **CSV/TSV** (``.csv``; ``.tsv``, ``.tab``): the csv module's standard dialect (RFC 4180: fields in double quotes
  may hold delimiters and line breaks, a quote inside them is doubled), a UTF-8 byte-order mark allowed, every cell
  text. ``columnar=True`` reads the same dialect with Arrow's parser, which is much faster on millions of rows.
- **Parquet**: read by record batches; nested (struct) fields are columns named with dots (``extra_info.id``).
- **DuckDB** (``.duckdb``, ``.db``): the ``predictions`` table, or the one named; JSON columns come back decoded.

:func:`iter_batches` streams rows in batches (Parquet and DuckDB never load whole); :func:`read_rows` returns a
:class:`Rows` table; :func:`pick_column` picks a column from a flag's value or a list of usual names, with one
error message for every command.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import InputError, UsageError

__all__ = ["FORMATS", "CODE_COLUMNS", "Rows", "table_format", "read_rows", "iter_rows", "iter_batches", "pick_column",
           "read_codes_file", "duckdb_rows"]

#: File extension -> table format.
FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
                           ".tab": "tsv", ".parquet": "parquet", ".duckdb": "duckdb", ".db": "duckdb"}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
BATCH_ROWS = 4096

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # notes are long: a CSV cell may hold a whole discharge summary


def table_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The table format of ``path``: ``fmt`` when given, else from the extension."""
    if fmt:
        if fmt not in _DELIMITERS and fmt not in ("jsonl", "parquet", "duckdb"):
            raise UsageError(f"unknown table format {fmt!r}: choose jsonl, csv, tsv, parquet or duckdb")
        return fmt
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise InputError(f"cannot tell the table format of {path} from its extension: use .jsonl, .csv, .tsv, "
                         ".parquet or .duckdb")
    return kind


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


# -- text formats ------------------------------------------------------------------------------------------------
def _text(path: Path, data: bytes | None, errors: str, newline: str | None) -> TextIO:
    """The file (or ``data``) as text: UTF-8, a byte-order mark dropped."""
    if data is not None:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors=errors, newline=newline)
    try:
        return open(path, encoding="utf-8-sig", errors=errors, newline=newline)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _not_utf8(source: str) -> InputError:
    return InputError(f"{source} is not UTF-8 text: save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet)")


def _jsonl_items(fh: TextIO, source: str, *, torn_tail: bool, bad_lines: str) -> Iterator[tuple[int, dict]]:
    first = fh.readline()
    if first.lstrip().startswith("["):  # a .json file holding one array of objects
        try:
            items = json.loads(first + fh.read())
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
            row = json.loads(line)
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


def _csv_items(fh: TextIO, source: str, delimiters: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """The header and (starting line, row) of each record; blank records are skipped."""
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
                yield start, {name: (values[i] if i < len(values) else None) for i, name in enumerate(header)}
        except csv.Error as exc:
            raise InputError(f"{source}:{end + 1} is not a readable CSV record ({exc})") from None

    return header, items()


# -- reading -----------------------------------------------------------------------------------------------------
def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory: give a .jsonl, .csv, .tsv, .parquet or .duckdb file")


def _numbered(path: Path, fmt: str, *, source: str, data: bytes | None, errors: str, torn_tail: bool,
              bad_lines: str, delimiters: str | None) -> tuple[list[str] | None, Iterator[tuple[int, dict]]]:
    """(header or None, (line, row) items) of a JSONL or CSV/TSV table."""
    if fmt == "jsonl":
        fh = _text(path, data, errors, None)
        return None, _closing(fh, _jsonl_items(fh, source, torn_tail=torn_tail, bad_lines=bad_lines), source)
    fh = _text(path, data, errors, "")
    try:
        header, items = _csv_items(fh, source, delimiters or _DELIMITERS[fmt])
    except UnicodeDecodeError:
        fh.close()
        raise _not_utf8(source) from None
    return header, _closing(fh, items, source)


def _closing(fh: TextIO, items: Iterator[tuple[int, dict]], source: str) -> Iterator[tuple[int, dict]]:
    with fh:
        try:
            yield from items
        except UnicodeDecodeError:
            raise _not_utf8(source) from None


def iter_batches(path: str | os.PathLike[str], *, fmt: str | None = None, table: str | None = None,
                 batch_size: int = BATCH_ROWS, torn_tail: bool = False) -> Iterator[list[dict]]:
    """The rows of a table as lists of row dicts, ``batch_size`` at a time: Parquet by record batches and DuckDB by
    ``fetchmany``, so a large file is never held whole; JSONL and CSV line by line."""
    p = Path(path).expanduser()
    _check_file(p)
    kind = table_format(p, fmt)
    if kind == "parquet":
        for batch in _parquet_file(p).iter_batches(batch_size=batch_size):
            yield batch.to_pylist()
        return
    if kind == "duckdb":
        con = _duckdb_connect(p)
        try:
            yield from duckdb_rows(con, _table_sql(con, p, table or "predictions"), batch_size=batch_size)
        finally:
            con.close()
        return
    _, items = _numbered(p, kind, source=str(p), data=None, errors="strict", torn_tail=torn_tail,
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


def read_rows(path: str | os.PathLike[str], *, fmt: str | None = None, table: str | None = None,
              data: bytes | None = None, source: str | None = None, columnar: bool = False, errors: str = "strict",
              torn_tail: bool = False, bad_lines: str = "raise", delimiters: str | None = None,
              required: str | None = None) -> Rows:
    """Read a whole table into :class:`Rows`.

    ``data`` holds the file's bytes when they come from stdin (``source`` names them in messages). ``columnar``
    reads CSV/TSV with Arrow (fast; no line numbers). ``errors="replace"`` reads text that is not UTF-8 with
    replacement characters instead of failing. ``bad_lines="keep"`` turns a JSONL line that is not a JSON object
    into a row ``{"__error": why}`` instead of failing. ``delimiters`` (e.g. ``",;\\t"``) lets a CSV file use any of
    them: the one that splits the header into the most fields wins. ``required`` (what the rows should hold)
    makes an empty file or a table without rows an error.
    """
    p = Path(path).expanduser()
    source = source or str(p)
    if data is None:
        _check_file(p)
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
        parquet = _parquet_file(p)
        try:
            return Rows(source, arrow=parquet.read())
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{source} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if kind == "duckdb":
        return Rows(source, dicts=[r for batch in iter_batches(p, fmt=kind, table=table) for r in batch])
    if kind in _DELIMITERS and columnar and data is None and errors == "strict" and not delimiters:
        return Rows(source, arrow=_arrow_csv(p, _DELIMITERS[kind]))
    header, items = _numbered(p, kind, source=source, data=data, errors=errors, torn_tail=torn_tail,
                              bad_lines=bad_lines, delimiters=delimiters)
    lines, dicts = [], []
    for n, row in items:
        lines.append(n)
        dicts.append(row)
    return Rows(source, dicts=dicts, columns=header, lines=lines)


def _parquet_file(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def _arrow_csv(path: Path, delimiter: str):
    """A CSV/TSV file as an Arrow table of text columns (the standard dialect; Arrow skips a byte-order mark)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with _text(path, None, "strict", "") as fh:
        try:
            header = next(csv.reader(fh, delimiter=delimiter), None)
        except UnicodeDecodeError:
            raise _not_utf8(str(path)) from None
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
        what = "TSV" if delimiter == "\t" else "CSV"
        raise InputError(f"{path} is not a readable {what} file: {str(exc).splitlines()[0]}") from None


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
    _check_file(p)
    is_table = p.suffix.lower() in FORMATS
    if is_table or column:
        rows = read_rows(p, fmt=None if is_table else "csv")
        candidates = rows.columns if len(rows.columns) == 1 else CODE_COLUMNS
        name = pick_column(rows.columns, column, candidates, source=str(p), what="code", option="--column")
        return ["" if v is None else str(v) for v in rows.get(name)]
    with _text(p, None, "strict", None) as fh:
        try:
            text = fh.read()
        except UnicodeDecodeError:
            raise _not_utf8(str(p)) from None
    return [code for line in text.splitlines() for code in _CODE_SEPARATORS.split(line.split("#", 1)[0]) if code]


# -- DuckDB ------------------------------------------------------------------------------------------------------
def _duckdb_connect(path: Path):
    from .db import Store, connect

    return connect(path, Store("DuckDB file", (), InputError, "choose another file"), read_only=True)


def _table_sql(con, path: Path, table: str) -> str:
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
