"""Writers of prediction records: JSONL, CSV and Parquet files, stdout, or nothing; :func:`open_writer` picks one.

Writers are exclusive, resumable and crash-safe:

- A file writer locks its output (:class:`~icdreason.locks.FileLock`, ``.NAME.lock``) before it reads, trims or
  writes it, and releases the lock when closed: a second run on the same output gets a one-line error naming the
  first.

- **JSONL** is appended batch by batch (one ``write`` + ``fsync`` per batch). A process killed mid-write can leave at
  most one torn last line; opening with ``resume=True`` cuts it off and returns the ids already written.
- Records that are errors (``error`` set) can be replaced on ``--resume``: :meth:`RecordWriter.drop` removes them
  first (JSONL is rewritten atomically without them; CSV and Parquet drop them from the journal), and the new
  records are appended, so an id is never written twice.
- **CSV and Parquet** cannot be appended safely, and are streamed so that memory does not grow with the run:
  each batch goes to a hidden journal next to the output (``.NAME.journal.jsonl``, appended like JSONL); every
  :data:`~icdreason.records.parts.PART_ROWS` records the journal becomes a Parquet part file in ``.NAME.parts/``
  (written whole, then renamed into place) and is emptied. The output file is written from the parts and the
  journal, one row group at a time, to a temporary file renamed into place (``os.replace``) at checkpoints and at
  the end; the parts and the journal are removed once the final file is in place, and kept when the run is
  interrupted or killed. Resuming reads the ids back from them (a kill between a part's rename and the journal's
  truncation leaves rows in both: the journal's copies are dropped), so nothing is lost or written twice. A
  finished output being extended with ``--resume`` is first copied into parts (old Parquet files, whose
  ``parameters`` column is JSON text, included). Memory holds one part at most.
- Parquet files have one schema (:func:`icdreason.records.arrow.schema`): nested fields are typed structs and lists
  (``parameters.temperature``, ``confidence.code``, ``top_k[1].code``), never JSON text.

The DuckDB log (``--db``) is :class:`icdreason.records.db.PredictionDB`.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import sys
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ..errors import UsageError, writing
from ..locks import FileLock
from ..tables import iter_batches, iter_rows
from ..tables.cells import CsvWriter
from .arrow import from_arrow, table_of
from .parts import PART_ROWS, PartStore
from .readers import from_csv_row, read_predictions
from .record import COLUMNS, FIELDS, Record, make_records_encodable

__all__ = ["FORMATS", "RecordWriter", "JsonlWriter", "StreamWriter", "NullWriter", "TableWriter", "new_run_id",
           "format_for", "open_writer"]

FORMATS = ("jsonl", "csv", "parquet")


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


# -- writing -----------------------------------------------------------------------------------------------------
class RecordWriter(ABC):
    """Base of the writers: ``done_ids`` (already written, for --resume), ``write_batch``, ``close``."""

    path: Path | None = None

    def __init__(self) -> None:
        self.done_ids: set[str] = set()
        self.error_ids: set[str] = set()  # the ids among done_ids whose record is an error
        self.existing_run_id: str | None = None  # the run id of the records found when resuming
        self.written = 0
        self._lock: FileLock | None = None

    def write_batch(self, records: list[Record]) -> None:
        """Write one batch durably before returning. Text no file can hold (a lone surrogate) is replaced first and
        the record flagged (:func:`~icdreason.records.record.make_records_encodable`)."""
        self._write(make_records_encodable(records))

    @abstractmethod
    def _write(self, records: list[Record]) -> None:
        """Write one batch of encodable records durably."""

    def records(self, ids: set[str]) -> list[Record]:
        """Records already written with the given ids (to copy them into another output on --resume)."""
        return []

    def drop(self, ids: set[str]) -> None:
        """Remove the records with these ids (error records about to be predicted again)."""

    def close(self, *, complete: bool = True) -> None:
        """Finish the output. ``complete=False`` (interrupted run) keeps journals for a later --resume."""
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()

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
    """Append-only JSON Lines, one fsync per batch; repairs a torn tail on resume.

    The output is locked first (``lock``: one already taken, else taken here); ``journal=True`` marks a
    :class:`TableWriter`'s journal, covered by that writer's lock."""

    def __init__(self, path: Path, columns: tuple[str, ...], *, resume: bool, lock: FileLock | None = None,
                 journal: bool = False):
        super().__init__()
        self.path = path
        self.columns = columns
        self._lock = lock or (None if journal else FileLock.acquire(path))
        try:
            if resume and path.exists():
                self._repair_tail()
                for row in iter_rows(path, fmt="jsonl", torn_tail=True):
                    if "id" in row:
                        self.done_ids.add(str(row["id"]))
                        if row.get("error") is not None:
                            self.error_ids.add(str(row["id"]))
                        self.existing_run_id = row.get("run_id", self.existing_run_id)
            self._fh = open(path, "a" if resume else "w", encoding="utf-8")
        except BaseException:
            self._unlock()
            raise

    def records(self, ids: set[str]) -> list[Record]:
        self._fh.flush()
        return [Record(**r) for r in read_predictions(self.path) if r.get("id") in ids]

    def drop(self, ids: set[str]) -> None:
        """Rewrite the file without the records of these ids (atomically: a temporary file, then a rename)."""
        if not ids & self.done_ids:
            return
        self._fh.close()
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:  # lines end at b"\n" only
                try:
                    row_id = json.loads(line).get("id")
                except (ValueError, AttributeError):
                    row_id = None
                if row_id is None or str(row_id) not in ids:
                    dst.write(line)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.path)
        self.done_ids.difference_update(ids)  # in place: a TableWriter shares these sets
        self.error_ids.difference_update(ids)
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def _write(self, records: list[Record]) -> None:
        if not records:
            return
        with writing(self.path):  # a full disk: one line naming the file
            self._fh.write(_lines(records, self.columns))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        self.done_ids.update(r.id for r in records)
        self.error_ids.update(r.id for r in records if r.error is not None)
        self.written += len(records)

    def close(self, *, complete: bool = True) -> None:
        if not self._fh.closed:
            with writing(self.path):
                self._fh.close()
        self._unlock()


class StreamWriter(RecordWriter):
    """JSON Lines to a stream (``--out -``): flushed per batch; nothing to resume."""

    def __init__(self, stream: TextIO, columns: tuple[str, ...]):
        super().__init__()
        self.stream = stream
        self.columns = columns

    def _write(self, records: list[Record]) -> None:
        self.stream.write(_lines(records, self.columns))
        self.stream.flush()
        self.written += len(records)


class NullWriter(RecordWriter):
    """Keeps nothing on disk (the CLI's screen-only mode); records are still returned by the pipeline."""

    def _write(self, records: list[Record]) -> None:
        self.written += len(records)


def _csv_cell(column: str, value: Any) -> Any:
    if COLUMNS[column].is_json:
        return "" if value is None else json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class TableWriter(RecordWriter):
    """CSV or Parquet, streamed: batches go to a journal, every :data:`~icdreason.records.parts.PART_ROWS` records
    become a Parquet part, and the output is written from the parts and the journal, one row group at a time, at
    checkpoints and at the end (see the module docstring)."""

    def __init__(self, path: Path, fmt: str, columns: tuple[str, ...], *, resume: bool,
                 checkpoint_seconds: float = 30.0, lock: FileLock | None = None, part_rows: int | None = None):
        super().__init__()
        self.path = path
        self.fmt = fmt
        self.columns = columns
        self.checkpoint_seconds = checkpoint_seconds
        self.part_rows = part_rows or PART_ROWS
        self.parts = PartStore(path.with_name(f".{path.name}.parts"), columns)
        self._lock = lock or FileLock.acquire(path)
        try:
            self.journal = self._open(resume)
        except BaseException:
            self._unlock()
            raise
        self.done_ids = self.journal.done_ids
        self.error_ids = self.journal.error_ids
        self.existing_run_id = self.journal.existing_run_id
        self._last_checkpoint = time.monotonic()
        self._checkpoint_cost = 0.0

    def _open(self, resume: bool) -> JsonlWriter:
        self.journal_path = self.path.with_name(f".{self.path.name}.journal.jsonl")
        if not resume:
            self.journal_path.unlink(missing_ok=True)
            self.parts.remove()
        elif self.path.exists() and not self.journal_path.exists() and not self.parts.exists():
            self._seed()  # a finished file being extended: its records become the first parts
        journal = JsonlWriter(self.journal_path, self.columns, resume=resume, journal=True)
        journal_run = journal.existing_run_id  # the last record written is the journal's, when it has any
        in_parts: set[str] = set()
        for note_id, is_error, run in self.parts.ids():
            in_parts.add(note_id)
            if is_error:
                journal.error_ids.add(note_id)
            journal.existing_run_id = run or journal.existing_run_id
        # Killed after a part was renamed into place and before the journal was emptied: the part has those rows.
        journal.drop(in_parts & journal.done_ids)
        self._journal_rows = len(journal.done_ids)
        journal.done_ids |= in_parts
        if self._journal_rows and journal_run is not None:
            journal.existing_run_id = journal_run
        return journal

    def _seed(self) -> None:
        """Copy an existing output (any version of the schema) into parts, ``part_rows`` records at a time."""
        kind = "csv" if self.fmt == "csv" else "parquet"
        decode = from_csv_row if kind == "csv" else from_arrow
        try:
            for batch in iter_batches(self.path, fmt=kind, batch_size=self.part_rows):
                self.parts.add([decode(r) for r in batch])
        except BaseException:
            self.parts.remove()
            raise

    def records(self, ids: set[str]) -> list[Record]:
        self.journal._fh.flush()
        found = [r for r in self.parts.rows() if r.get("id") in ids]
        found += [r for r in read_predictions(self.journal_path) if r.get("id") in ids]
        return [Record(**r) for r in found]

    def drop(self, ids: set[str]) -> None:
        if not ids & self.done_ids:
            return
        self.parts.drop(ids)
        before = len(self.journal.done_ids)
        self.journal.drop(ids)  # also takes them out of done_ids and error_ids (shared sets)
        self._journal_rows -= min(self._journal_rows, before - len(self.journal.done_ids))

    def _write(self, records: list[Record]) -> None:
        self.journal.write_batch(records)
        self.written += len(records)
        self._journal_rows += len(records)
        if self._journal_rows >= self.part_rows:
            self._flush_part()
        elapsed = time.monotonic() - self._last_checkpoint
        # Writing the output costs O(records): do it at most every checkpoint_seconds, and never spend more than a
        # tenth of the run's time on it.
        if elapsed >= max(self.checkpoint_seconds, 10 * self._checkpoint_cost):
            self._materialise()

    def _journal_batches(self, size: int | None = None):
        self.journal._fh.flush()
        batch: list[dict[str, Any]] = []
        for row in iter_rows(self.journal_path, fmt="jsonl", torn_tail=True):
            batch.append(row)
            if len(batch) >= (size or self.part_rows):
                yield batch
                batch = []
        if batch:
            yield batch

    def _flush_part(self) -> None:
        """The journal's records become the next part; then the journal is emptied (a kill between the two is
        repaired on resume: rows in a part are dropped from the journal)."""
        for rows in self._journal_batches(2 * self.part_rows):  # one part, unless a batch is larger than a part
            self.parts.add(rows)
        fh = self.journal._fh
        with writing(self.journal_path):
            fh.truncate(0)
            fh.seek(0)
            fh.flush()
            os.fsync(fh.fileno())
        self._journal_rows = 0

    def _materialise(self) -> None:
        start = time.monotonic()
        tables = self.parts.tables()
        journal = self._journal_batches()
        if self.fmt == "parquet":
            write_parquet(self.path, self.parts.schema, tables, journal, self.columns)
        else:
            write_csv(self.path, self.columns, tables, journal)
        self._checkpoint_cost = time.monotonic() - start
        self._last_checkpoint = time.monotonic()

    def close(self, *, complete: bool = True) -> None:
        if self.journal._fh.closed:
            return
        try:
            self._materialise()
            self.journal.close()
            if complete:
                self.journal_path.unlink(missing_ok=True)
                self.parts.remove()
        finally:
            self._unlock()


def _atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path`` (same folder); a failure leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writing(path):  # a full disk: one line naming the output, no temporary file left behind
            write(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet(path: Path, schema, tables, batches, columns: tuple[str, ...]) -> None:
    """A Parquet record file from Arrow ``tables`` (row groups of parts) then record-dict ``batches``, one row
    group at a time, atomically."""
    import pyarrow.parquet as pq

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            with pq.ParquetWriter(fh, schema, compression="zstd") as writer:
                for table in tables:
                    writer.write_table(table)
                for batch in batches:
                    writer.write_table(table_of(batch, columns))
            fh.flush()
            os.fsync(fh.fileno())

    _atomically(path, write)


def write_csv(path: Path, columns: tuple[str, ...], tables, batches) -> None:
    """A CSV record file from Arrow ``tables`` then record-dict ``batches``, streamed, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = CsvWriter(fh)  # text cells that start like a formula are neutralised
            writer.writerow(columns)
            rows = itertools.chain((from_arrow(r) for t in tables for r in t.to_pylist()),
                                   (r for b in batches for r in b))
            for row in rows:
                writer.writerow([_csv_cell(c, row.get(c)) for c in columns])
            fh.flush()
            os.fsync(fh.fileno())

    _atomically(path, write)


def open_writer(out: str | os.PathLike[str] | None, *, fmt: str | None = None, resume: bool = False,
                overwrite: bool = False, include_note: bool = True, keep_raw: bool = False,
                stream: TextIO | None = None, part_rows: int | None = None) -> RecordWriter:
    """A writer for ``--out``: a file (format from ``fmt`` or the extension), ``"-"`` for stdout, None for none.

    An existing file is an error unless ``resume`` (continue it, skipping ids already written) or ``overwrite``. A
    file output is locked first: another run writing it raises :class:`~icdreason.errors.LockedError`.
    ``part_rows`` sets the records per part (and per row group) of a CSV or Parquet output.
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
    lock = FileLock.acquire(path)  # before anything looks at the file: another run may be writing it
    try:
        if path.exists() and not resume and not overwrite and path.stat().st_size > 0:
            raise UsageError(f"{path} exists: add --resume to continue it, or --overwrite to replace it")
        if kind == "jsonl":
            return JsonlWriter(path, columns, resume=resume, lock=lock)
        return TableWriter(path, kind, columns, resume=resume, lock=lock, part_rows=part_rows)
    except BaseException:
        lock.release()
        raise

