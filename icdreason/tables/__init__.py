"""Reading tables: the rows of a JSONL, CSV/TSV, Parquet or DuckDB file, and choosing a column by name.

Every input that is a table (notes, predictions, gold codes, codes to validate, audit decisions, distillation
examples) is read here, so the formats, the CSV dialect and the error messages are the same everywhere:

- **JSONL** (``.jsonl``, ``.ndjson``, ``.json``; a ``.json`` file holding one array works too): one JSON object per
  line. ``torn_tail=True`` ignores an unterminated last line that is not JSON: what a killed writer leaves behind.
  A UTF-8 byte-order mark is allowed; an integer too long for Python (a 5,000-digit id) is kept as its digits; a
  lone surrogate escape (``"\\ud83d"``, half a character, which cannot be written as UTF-8) becomes U+FFFD, as
  undecodable bytes do where replacement is asked for.
- **CSV/TSV** (``.csv``; ``.tsv``, ``.tab``): the csv module's standard dialect (RFC 4180: fields in double quotes
  may hold delimiters and line breaks, a quote inside them is doubled), a UTF-8 byte-order mark allowed, every cell
  text. ``columnar=True`` reads the same dialect with Arrow's parser, which is much faster on millions of rows. A
  record with more fields than the header is an error naming its line (never silently cut short), and cells that
  icdreason's CSV writers neutralised against formula injection (``'=…``) are restored (:mod:`.cells`).
- **Parquet**: read by record batches; nested (struct) fields are columns named with dots (``extra_info.id``).
- **DuckDB** (``.duckdb``, ``.db``): the ``predictions`` table, or the one named; JSON columns come back decoded.

:func:`iter_batches` streams rows in batches (Parquet and DuckDB never load whole); :func:`stream_rows` streams
``(line, row)`` with the header or schema first (notes are read through it); :func:`read_rows` returns a
:class:`Rows` table; :func:`pick_column` picks a column from a flag's value or a list of usual names, with one
error message for every command.
"""

from .formats import duckdb_rows
from .read import (CODE_COLUMNS, FORMATS, iter_batches, iter_rows, parquet_rows, read_codes_file, read_rows,
                   stream_rows, table_format)
from .rows import Rows, pick_column

__all__ = [
    "CODE_COLUMNS",
    "FORMATS",
    "Rows",
    "duckdb_rows",
    "iter_batches",
    "iter_rows",
    "parquet_rows",
    "pick_column",
    "read_codes_file",
    "read_rows",
    "stream_rows",
    "table_format",
]
