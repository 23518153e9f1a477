"""Reading MIMIC-IV with DuckDB: the discharge notes and the first-coded diagnosis, streamed in Arrow batches.

Inputs are read where they lie — ``.csv.gz`` (as distributed by PhysioNet), ``.csv`` or ``.parquet`` — and never
loaded into Python as a whole: the small tables (one note id and one target code per admission) are built inside
DuckDB, and the note texts come back in record batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["NOTE_COLUMNS", "DIAGNOSIS_COLUMNS", "MimicSource"]

NOTE_COLUMNS = ("note_id", "subject_id", "hadm_id", "text")
DIAGNOSIS_COLUMNS = ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")


def _relation(path: Path) -> str:
    """A DuckDB table function for a CSV(.gz) or Parquet file, all columns as text."""
    literal = "'" + str(path).replace("'", "''") + "'"
    name = path.name.lower()
    if name.endswith(".parquet"):
        return f"read_parquet({literal})"
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        return f"read_csv({literal}, header=true, all_varchar=true, quote='\"', escape='\"')"
    raise InputError(f"{path}: expected a .csv.gz, .csv or .parquet file (MIMIC-IV distributes .csv.gz)")


class MimicSource:
    """The two MIMIC-IV tables behind one DuckDB connection."""

    def __init__(self, notes: str | Path, diagnoses: str | Path, *, threads: int | None = None,
                 memory_limit: str | None = None):
        import duckdb

        self.notes_path, self.dx_path = Path(notes).expanduser(), Path(diagnoses).expanduser()
        for path, flag in ((self.notes_path, "--notes"), (self.dx_path, "--diagnoses")):
            if not path.is_file():
                raise InputError(f"{flag} file not found: {path}")
        self.con = duckdb.connect()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.notes = _relation(self.notes_path)
        self.dx = _relation(self.dx_path)
        self.note_columns = self._columns(self.notes, self.notes_path, NOTE_COLUMNS, "--notes",
                                          "MIMIC-IV-Note discharge.csv.gz")
        self._columns(self.dx, self.dx_path, DIAGNOSIS_COLUMNS, "--diagnoses", "MIMIC-IV hosp/diagnoses_icd.csv.gz")
        self._prepared = False

    def _columns(self, relation: str, path: Path, required: tuple[str, ...], flag: str, what: str) -> list[str]:
        try:
            cols = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        except Exception as exc:
            raise InputError(f"cannot read {flag} {path} ({str(exc).splitlines()[0]})") from None
        missing = [c for c in required if c not in cols]
        if missing:
            raise InputError(f"{flag} {path} lacks column(s) {', '.join(missing)} (found: {', '.join(cols)}): "
                             f"expected {what}")
        return cols

    def prepare(self) -> dict[str, Any]:
        """Build the per-admission tables (chosen note, first-coded diagnosis) and return the cohort counts."""
        ds_filter = "WHERE upper(trim(note_type)) = 'DS'" if "note_type" in self.note_columns else ""
        seq = "TRY_CAST(note_seq AS INTEGER)" if "note_seq" in self.note_columns else "0"
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE dx1 AS
            SELECT TRY_CAST(hadm_id AS BIGINT) AS hadm_id, upper(trim(icd_code)) AS icd_code,
                   TRY_CAST(icd_version AS INTEGER) AS icd_version
            FROM {self.dx}
            WHERE TRY_CAST(seq_num AS INTEGER) = 1 AND hadm_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY TRY_CAST(hadm_id AS BIGINT) ORDER BY icd_code) = 1""")
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE chosen AS
            SELECT TRY_CAST(hadm_id AS BIGINT) AS hadm_id, arg_min(note_id, coalesce({seq}, 0)) AS note_id,
                   count(*) AS notes
            FROM {self.notes} {ds_filter}
            GROUP BY 1 HAVING TRY_CAST(hadm_id AS BIGINT) IS NOT NULL""")
        row = self.con.execute("""
            SELECT (SELECT sum(notes) FROM chosen), (SELECT count(*) FROM chosen),
                   count(*) FILTER (WHERE d.hadm_id IS NULL),
                   count(*) FILTER (WHERE d.icd_version = 9),
                   count(*) FILTER (WHERE d.icd_version = 10),
                   count(*) FILTER (WHERE d.hadm_id IS NOT NULL AND coalesce(d.icd_version, 0) NOT IN (9, 10))
            FROM chosen c LEFT JOIN dx1 d USING (hadm_id)""").fetchall()[0]
        self._prepared = True
        return {
            "discharge_notes": int(row[0] or 0),
            "admissions_with_note": int(row[1] or 0),
            "without_first_diagnosis": int(row[2] or 0),
            "icd9_excluded": int(row[3] or 0),
            "icd10_admissions": int(row[4] or 0),
            "other_version_excluded": int(row[5] or 0),
        }

    def batches(self, batch_rows: int = 2000, limit: int | None = None):
        """Record batches of (note_id, subject_id, hadm_id, icd_code, text) for ICD-10 admissions, streamed."""
        if not self._prepared:
            self.prepare()
        limit_sql = f"LIMIT {int(limit)}" if limit else ""
        query = f"""
            SELECT CAST(n.note_id AS VARCHAR) AS note_id, TRY_CAST(n.subject_id AS BIGINT) AS subject_id,
                   c.hadm_id, d.icd_code, CAST(n.text AS VARCHAR) AS text
            FROM {self.notes} n
            JOIN chosen c ON CAST(n.note_id AS VARCHAR) = CAST(c.note_id AS VARCHAR)
            JOIN dx1 d ON d.hadm_id = c.hadm_id
            WHERE d.icd_version = 10 {limit_sql}"""
        relation = self.con.sql(query)
        if hasattr(relation, "to_arrow_reader"):  # duckdb >= 2
            return relation.to_arrow_reader(batch_rows)
        return relation.record_batch(batch_rows)  # duckdb 1.x

    def close(self) -> None:
        self.con.close()
