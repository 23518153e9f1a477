"""Prediction records: the :class:`Record` (one per note), its writers, its readers and the DuckDB prediction log.

- :mod:`.record` -- the record and the one table of its column types (Arrow, DuckDB, CSV);
- :mod:`.writers` -- resumable JSONL/CSV/Parquet writers, stdout and screen-only writers, :func:`open_writer`;
- :mod:`.readers` -- :func:`read_predictions` for every format;
- :mod:`.db` -- the ``--db`` log: :class:`PredictionDB`, its frozen migrations, :func:`read_db_predictions`.
"""

from .db import MIGRATIONS, PredictionDB, read_db_predictions
from .readers import read_predictions
from .record import COLUMNS, FIELDS, JSON_FIELDS, ColumnType, Record
from .writers import FORMATS, RecordWriter, format_for, new_run_id, open_writer

__all__ = [
    "COLUMNS",
    "FIELDS",
    "FORMATS",
    "JSON_FIELDS",
    "MIGRATIONS",
    "ColumnType",
    "PredictionDB",
    "Record",
    "RecordWriter",
    "format_for",
    "new_run_id",
    "open_writer",
    "read_db_predictions",
    "read_predictions",
]
