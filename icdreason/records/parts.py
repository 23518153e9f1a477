"""The completed row groups of a CSV or Parquet output being written: a folder of Parquet part files.

``.NAME.parts/000001.parquet``, ``000002.parquet``, … each hold :data:`PART_ROWS`-odd records in the output's
schema (:mod:`.arrow`). A part is written whole or not at all: a temporary file, flushed to disk, renamed into place,
the folder synced. Together with the writer's JSONL journal (the batches not yet in a part) they are everything a
run has written; the output file is made from them (:class:`~icdreason.records.writers.TableWriter`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import writing
from .arrow import conform, from_arrow, schema, table_of

__all__ = ["PartStore", "PART_ROWS"]

#: Records per part (and per Parquet row group of the output): what a writer holds in memory at most, besides one
#: batch.
PART_ROWS = 2048


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PartStore:
    """The part files of one output (see the module docstring)."""

    def __init__(self, folder: Path, columns: tuple[str, ...]):
        self.folder = folder
        self.columns = columns
        self.schema = schema(columns)

    def exists(self) -> bool:
        return self.folder.is_dir()

    def paths(self) -> list[Path]:
        """The parts in written order (stray temporary files of a killed writer are not parts)."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".parquet" and p.stem.isdigit())

    def _next_path(self) -> Path:
        paths = self.paths()
        return self.folder / f"{(int(paths[-1].stem) + 1) if paths else 1:06d}.parquet"

    def _write_file(self, path: Path, write) -> None:
        """Write a Parquet file at ``path`` whole or not at all: ``write(writer)`` writes its row groups."""
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with writing(path):
                with open(tmp, "wb") as fh:
                    with pq.ParquetWriter(fh, self.schema, compression="zstd") as writer:
                        write(writer)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                _sync_dir(self.folder)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` (record dicts) as the next part."""
        if rows:
            table = table_of(rows, self.columns)
            self._write_file(self._next_path(), lambda w: w.write_table(table))

    def tables(self, columns: list[str] | None = None) -> Iterator[Any]:
        """Each row group of each part as an Arrow table in the output's schema (``columns``: only those)."""
        import pyarrow.parquet as pq

        for path in self.paths():
            parquet = pq.ParquetFile(path)
            for i in range(parquet.num_row_groups):
                table = parquet.read_row_group(i, columns=[c for c in columns if c in parquet.schema_arrow.names]
                                               if columns else None)
                yield table if columns else conform(table, self.schema)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every record written to parts, as record dicts, in order."""
        for table in self.tables():
            for row in table.to_pylist():
                yield from_arrow(row)

    def ids(self) -> Iterator[tuple[str, bool, str | None]]:
        """(id, is an error, run id) of every record in the parts, reading those three columns only."""
        for table in self.tables(["id", "error", "run_id"]):
            ids = table.column("id").to_pylist()
            errors = table.column("error").to_pylist() if "error" in table.column_names else [None] * len(ids)
            runs = table.column("run_id").to_pylist() if "run_id" in table.column_names else [None] * len(ids)
            for i, error, run in zip(ids, errors, runs):
                yield str(i), error is not None, run

    def drop(self, ids: set[str]) -> None:
        """Rewrite the parts that hold any of ``ids`` without those records (each part whole or not at all)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        wanted = pa.array(sorted(ids), type=pa.string())
        for path in self.paths():
            table = conform(pq.read_table(path), self.schema)
            keep = pc.invert(pc.is_in(table.column("id"), value_set=wanted))
            if pc.all(keep).as_py():
                continue
            kept = table.filter(keep)
            if kept.num_rows:
                self._write_file(path, lambda w: w.write_table(kept))
            else:
                path.unlink()
                _sync_dir(self.folder)

    def remove(self) -> None:
        """Delete the folder (the output is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)
