"""The audit database's schema as ordered, named migrations, recorded in the ``_migrations`` table.

Every open applies the migrations a file lacks, each in its own transaction, so an audit database written by an older
icdreason gains new tables and columns without losing a decision. A test pins the columns of a fresh database.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb


Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]


def _m0001_audit(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE audit (                -- one row: the predictions file this audit was started on
            predictions_path VARCHAR NOT NULL,
            predictions_sha256 VARCHAR NOT NULL,
            run_id VARCHAR,
            records INTEGER NOT NULL,       -- records in the predictions file
            strategy VARCHAR NOT NULL,      -- all | random | low-confidence | per-chapter | disagreement
            sample_size INTEGER,
            seed INTEGER NOT NULL,
            kb_release VARCHAR,
            icdreason_version VARCHAR,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE cases (                -- the sampled prediction records, in review order
            position INTEGER NOT NULL,
            case_id VARCHAR PRIMARY KEY,
            model_code VARCHAR,             -- dotted; NULL when the model gave no code
            status VARCHAR,                 -- billable | header | unknown | malformed | no_output
            description VARCHAR,
            chapter INTEGER,
            category VARCHAR,
            confidence DOUBLE,              -- self-consistency support of the code, when present
            record JSON NOT NULL            -- the whole prediction record (note, trace, top-k, enrichment)
        );
        CREATE TABLE reviewers (
            name VARCHAR PRIMARY KEY,
            added_at TIMESTAMP NOT NULL,
            added_by VARCHAR NOT NULL       -- session | import
        );
        CREATE SEQUENCE decision_ids START 1;
        CREATE TABLE decisions (            -- append-only: a reviewer's latest row for a case is their decision
            id BIGINT PRIMARY KEY DEFAULT nextval('decision_ids'),
            reviewer VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            predictions_sha256 VARCHAR NOT NULL,
            decision VARCHAR NOT NULL,      -- accept | correct | reject | skip
            expert_code VARCHAR,            -- dotted; the corrected code, or an optional code with a rejection
            blind_code VARCHAR,             -- the code entered before the model's was shown (blind mode)
            reason VARCHAR,                 -- one of REJECT_REASONS (rejections)
            comment VARCHAR,
            flagged BOOLEAN NOT NULL DEFAULT false,
            seconds DOUBLE,                 -- time spent on the case
            decided_at TIMESTAMP NOT NULL,
            source VARCHAR NOT NULL         -- session | import:<file name>
        );
        CREATE TABLE blind_codes (          -- codes entered in blind mode, kept even when no decision followed
            reviewer VARCHAR NOT NULL,
            case_id VARCHAR NOT NULL,
            code VARCHAR NOT NULL,
            seconds DOUBLE,
            entered_at TIMESTAMP NOT NULL,
            PRIMARY KEY (reviewer, case_id)
        );
        """
    )


def _m0002_indexes(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE INDEX decisions_reviewer_case ON decisions (reviewer, case_id)")


MIGRATIONS: list[Migration] = [
    ("0001_audit_tables", _m0001_audit),
    ("0002_decision_index", _m0002_indexes),
]
