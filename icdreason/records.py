"""The prediction record (one per note), its writers (JSONL, CSV, Parquet) and :func:`read_predictions`.

Writers are resumable and crash-safe:

- **JSONL** is appended batch by batch (one ``write`` + ``fsync`` per batch). A process killed mid-write can leave at
  most one torn last line; opening with ``resume=True`` cuts it off and returns the ids already written.
- **CSV and Parquet** cannot be appended safely, so each batch goes to a hidden journal next to the output
  (``.NAME.journal.jsonl``, appended like JSONL) and the output file itself is rewritten atomically (temporary file +
  ``os.replace``) at checkpoints and at the end; the journal is removed once the final file is in place.

The DuckDB log (``--db``) lives in :mod:`icdreason.records_db`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import secrets
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from .errors import InputError, UsageError

__all__ = ["Record", "FIELDS", "JSON_FIELDS", "FORMATS", "new_run_id", "format_for", "open_writer",
           "read_predictions", "RecordWriter"]


@dataclass
class Record:
    """One prediction: what the engine said about one note, checked against the code table."""

    id: str
    source: str
    run_id: str
    engine: str
    model: str | None
    uses_llm: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # the note text given to the engine; omitted with --no-note
    trace: str = ""
    code_raw: str | None = None
    code: str | None = None  # dotted, normalised
    format_ok: bool = False  # the paper's format check
    parse_note: str | None = None  # how the tolerant fallback found the code, when the format did not hold
    status: str = "no_output"  # billable | header | unknown | malformed | no_output
    description: str | None = None
    chapter: int | None = None
    category: str | None = None
    suggestions: list[str] = field(default_factory=list)
    confidence: dict[str, float] = field(default_factory=lambda: {"code": 0.0, "category": 0.0, "chapter": 0.0})
    top_k: list[dict[str, Any]] = field(default_factory=list)  # [{"code", "support"}]
    symptoms: str | None = None
    symptoms_from: str | None = None
    guideline: str | None = None
    guideline_section: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    raw: list[str] | None = None  # raw model output, only with --keep-raw

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict; ``note`` and ``raw`` are left out when they are None."""
        out = dataclasses.asdict(self)
        for optional in ("note", "raw"):
            if out[optional] is None:
                del out[optional]
        return out


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))
#: Fields holding lists or dicts: JSON text in CSV files, JSON columns in DuckDB.
JSON_FIELDS = frozenset({"parameters", "suggestions", "confidence", "top_k", "flags", "raw"})
_BOOL_FIELDS = frozenset({"uses_llm", "format_ok"})
_INT_FIELDS = frozenset({"chapter", "tokens_in", "tokens_out"})
_FLOAT_FIELDS = frozenset({"seconds"})
FORMATS = ("jsonl", "csv", "parquet")
# What an empty CSV cell reads back as (CSV cannot tell None from "").
_CSV_EMPTY: dict[str, Any] = {"trace": "", "note": "", "suggestions": [], "top_k": [], "flags": [],
                              "parameters": {}, "confidence": {}}


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus six random hex digits, e.g. ``20260412T101500-3f9a1c``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def format_for(path: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The output format: an explicit ``--format``, else the file extension (.jsonl/.json, .csv, .parquet)."""
    if explicit:
        if explicit not in FORMATS:
            raise UsageError(f"unknown --format {explicit!r}: choose one of {', '.join(FORMATS)}")
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson", ""):
        return "jsonl"
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    if suffix in (".duckdb", ".db"):
        raise UsageError(f"{path}: DuckDB output goes through --db FILE, not --out")
    raise UsageError(f"cannot tell the format of {path} from its extension: use .jsonl, .csv or .parquet, or --format")


# -- reading -----------------------------------------------------------------------------------------------------
def _decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Turn a CSV row (all strings) back into typed values."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "":
            out[key] = _CSV_EMPTY.get(key)
            if isinstance(out[key], (list, dict)):
                out[key] = type(out[key])()
            continue
        if key in JSON_FIELDS:
            out[key] = json.loads(value)
        elif key in _BOOL_FIELDS:
            out[key] = value.strip().lower() in ("true", "1")
        elif key in _INT_FIELDS:
            out[key] = int(float(value))
        elif key in _FLOAT_FIELDS:
            out[key] = float(value)
        else:
            out[key] = value
    return out


def _read_jsonl_text(text: str, path: Path) -> list[dict[str, Any]]:
    rows = []
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):  # a torn last line from a killed writer: not a record
                break
            raise InputError(f"{path}:{n} is not valid JSON: is this a predictions file?") from None
    return rows


def read_predictions(path: str | os.PathLike[str], *, run_id: str | None = None) -> list[dict[str, Any]]:
    """Read prediction records from a JSONL, CSV, Parquet or DuckDB (``predictions`` table) file, in written order.

    Lists and dicts come back decoded in every format. ``run_id`` keeps one run (useful for DuckDB logs).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"predictions file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in (".duckdb", ".db"):
        from .records_db import read_db_predictions

        return read_db_predictions(p, run_id=run_id)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(p).to_pylist()
        rows = [{k: (json.loads(v) if k in ("parameters",) and isinstance(v, str) else v) for k, v in r.items()}
                for r in rows]
        for r in rows:
            if r.get("raw") is None:
                r.pop("raw", None)
    elif suffix == ".csv":
        with open(p, newline="", encoding="utf-8") as fh:
            rows = [_decode_row(r) for r in csv.DictReader(fh)]
    else:
        rows = _read_jsonl_text(p.read_text(encoding="utf-8"), p)
    if run_id is not None:
        rows = [r for r in rows if r.get("run_id") == run_id]
    return rows


# -- writing -----------------------------------------------------------------------------------------------------
class RecordWriter(ABC):
    """Base of the writers: ``done_ids`` (already written, for --resume), ``write_batch``, ``close``."""

    path: Path | None = None

    def __init__(self) -> None:
        self.done_ids: set[str] = set()
        self.existing_run_id: str | None = None  # the run id of the records found when resuming
        self.written = 0

    @abstractmethod
    def write_batch(self, records: list[Record]) -> None:
        """Write one batch durably before returning."""

    def records(self, ids: set[str]) -> list[Record]:
        """Records already written with the given ids (to copy them into another output on --resume)."""
        return []

    def close(self, *, complete: bool = True) -> None:
        """Finish the output. ``complete=False`` (interrupted run) keeps journals for a later --resume."""

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)


def _lines(records: list[Record], columns: tuple[str, ...]) -> str:
    return "".join(
        json.dumps({k: v for k, v in r.to_dict().items() if k in columns}, ensure_ascii=False) + "\n"
        for r in records
    )


class JsonlWriter(RecordWriter):
    """Append-only JSON Lines, one fsync per batch; repairs a torn tail on resume."""

    def __init__(self, path: Path, columns: tuple[str, ...], *, resume: bool):
        super().__init__()
        self.path = path
        self.columns = columns
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume and path.exists():
            self._repair_tail()
            for row in _read_jsonl_text(path.read_text(encoding="utf-8"), path):
                if "id" in row:
                    self.done_ids.add(str(row["id"]))
                    self.existing_run_id = row.get("run_id", self.existing_run_id)
        self._fh = open(path, "a" if resume else "w", encoding="utf-8")

    def records(self, ids: set[str]) -> list[Record]:
        self._fh.flush()
        return [Record(**r) for r in read_predictions(self.path) if r.get("id") in ids]

    def _repair_tail(self) -> None:
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def write_batch(self, records: list[Record]) -> None:
        if not records:
            return
        self._fh.write(_lines(records, self.columns))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done_ids.update(r.id for r in records)
        self.written += len(records)

    def close(self, *, complete: bool = True) -> None:
        if not self._fh.closed:
            self._fh.close()


class StreamWriter(RecordWriter):
    """JSON Lines to a stream (``--out -``): flushed per batch; nothing to resume."""

    def __init__(self, stream: TextIO, columns: tuple[str, ...]):
        super().__init__()
        self.stream = stream
        self.columns = columns

    def write_batch(self, records: list[Record]) -> None:
        self.stream.write(_lines(records, self.columns))
        self.stream.flush()
        self.written += len(records)


class NullWriter(RecordWriter):
    """Keeps nothing on disk (the CLI's screen-only mode); records are still returned by the pipeline."""

    def write_batch(self, records: list[Record]) -> None:
        self.written += len(records)


def _parquet_schema(columns: tuple[str, ...]):
    import pyarrow as pa

    types = {
        "parameters": pa.string(), "uses_llm": pa.bool_(), "format_ok": pa.bool_(), "chapter": pa.int32(),
        "suggestions": pa.list_(pa.string()), "flags": pa.list_(pa.string()), "raw": pa.list_(pa.string()),
        "confidence": pa.struct([("code", pa.float64()), ("category", pa.float64()), ("chapter", pa.float64())]),
        "top_k": pa.list_(pa.struct([("code", pa.string()), ("support", pa.float64())])),
        "tokens_in": pa.int64(), "tokens_out": pa.int64(), "seconds": pa.float64(),
    }
    return pa.schema([(c, types.get(c, pa.string())) for c in columns])


def _write_table_file(path: Path, fmt: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Write all rows to ``path`` atomically (temporary file in the same folder, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if fmt == "csv":
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_csv_cell(c, row.get(c)) for c in columns])
            fh.flush()
            os.fsync(fh.fileno())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        shaped = []
        for row in rows:
            r = {c: row.get(c) for c in columns}
            if "parameters" in r:
                r["parameters"] = json.dumps(r["parameters"] or {}, ensure_ascii=False)
            if "top_k" in r:
                r["top_k"] = [{"code": t.get("code"), "support": t.get("support")} for t in r["top_k"] or []]
            shaped.append(r)
        table = pa.Table.from_pylist(shaped, schema=_parquet_schema(columns))
        pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _csv_cell(column: str, value: Any) -> Any:
    if column in JSON_FIELDS:
        return "" if value is None else json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class TableWriter(RecordWriter):
    """CSV or Parquet: a journal appended per batch, the output rewritten atomically at checkpoints and at the end."""

    def __init__(self, path: Path, fmt: str, columns: tuple[str, ...], *, resume: bool,
                 checkpoint_seconds: float = 30.0):
        super().__init__()
        self.path = path
        self.fmt = fmt
        self.columns = columns
        self.checkpoint_seconds = checkpoint_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        self.journal_path = path.with_name(f".{path.name}.journal.jsonl")
        if not resume and self.journal_path.exists():
            self.journal_path.unlink()
        seed: list[dict[str, Any]] = []
        if resume and path.exists() and not self.journal_path.exists():
            seed = read_predictions(path)  # a finished file being extended: its records start the journal
        self.journal = JsonlWriter(self.journal_path, columns, resume=resume)
        if seed:
            self.journal._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in seed))
            self.journal._fh.flush()
            os.fsync(self.journal._fh.fileno())
            self.journal.done_ids.update(str(r["id"]) for r in seed)
            self.journal.existing_run_id = seed[-1].get("run_id")
        self.done_ids = self.journal.done_ids
        self.existing_run_id = self.journal.existing_run_id
        self._last_checkpoint = time.monotonic()
        self._checkpoint_cost = 0.0

    def records(self, ids: set[str]) -> list[Record]:
        return self.journal.records(ids)

    def write_batch(self, records: list[Record]) -> None:
        self.journal.write_batch(records)
        self.written += len(records)
        elapsed = time.monotonic() - self._last_checkpoint
        # Rewriting the whole file costs O(records): do it at most every checkpoint_seconds, and never spend more
        # than a tenth of the run's time on it.
        if elapsed >= max(self.checkpoint_seconds, 10 * self._checkpoint_cost):
            self._materialise()

    def _materialise(self) -> None:
        start = time.monotonic()
        self.journal._fh.flush()
        rows = _read_jsonl_text(self.journal_path.read_text(encoding="utf-8"), self.journal_path)
        _write_table_file(self.path, self.fmt, rows, self.columns)
        self._checkpoint_cost = time.monotonic() - start
        self._last_checkpoint = time.monotonic()

    def close(self, *, complete: bool = True) -> None:
        if self.journal._fh.closed:
            return
        self._materialise()
        self.journal.close()
        if complete:
            self.journal_path.unlink(missing_ok=True)


def open_writer(out: str | os.PathLike[str] | None, *, fmt: str | None = None, resume: bool = False,
                overwrite: bool = False, include_note: bool = True, keep_raw: bool = False,
                stream: TextIO | None = None) -> RecordWriter:
    """A writer for ``--out``: a file (format from ``fmt`` or the extension), ``"-"`` for stdout, None for none.

    An existing file is an error unless ``resume`` (continue it, skipping ids already written) or ``overwrite``.
    """
    columns = tuple(c for c in FIELDS if (include_note or c != "note") and (keep_raw or c != "raw"))
    if out is None:
        if resume:
            raise UsageError("--resume needs --out FILE (or --db FILE): the file to continue")
        return NullWriter()
    if str(out) == "-":
        if resume:
            raise UsageError("--resume cannot continue stdout: write to a file with --out FILE")
        return StreamWriter(stream or sys.stdout, columns)
    path = Path(out).expanduser()
    kind = format_for(path, fmt)
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory: give a file name such as {path / 'predictions.jsonl'}")
    if path.exists() and not resume and not overwrite and path.stat().st_size > 0:
        raise UsageError(f"{path} exists: add --resume to continue it, or --overwrite to replace it")
    if kind == "jsonl":
        return JsonlWriter(path, columns, resume=resume)
    return TableWriter(path, kind, columns, resume=resume)

