"""The knowledge base's schema as ordered, named migrations, recorded in the ``_migrations`` table.

``kb build`` applies every migration to a fresh file. Opening an existing file applies the migrations it lacks when
they only add tables or columns (issues that add symptoms or guidelines register theirs here); a file whose core
code-table layout is older than :data:`SCHEMA_VERSION` must be rebuilt with ``icdreason kb build --force``.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb


#: Bumped when the layout of the tables filled by ``kb build`` changes incompatibly.
SCHEMA_VERSION = 1

Migration = tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]


def _m0001_core(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
        CREATE TABLE chapters (
            number INTEGER PRIMARY KEY, roman VARCHAR, title VARCHAR,
            first_category VARCHAR, last_category VARCHAR
        );
        CREATE TABLE codes (
            code VARCHAR NOT NULL,          -- dotted, e.g. M51.16; chapters are '1'..'22', blocks 'A00-A09'
            code_nodot VARCHAR NOT NULL,    -- undotted, e.g. M5116
            description VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,          -- chapter | block | category | subcategory | code
            billable BOOLEAN NOT NULL,      -- a leaf of the tabular list, valid on a claim
            placeholder BOOLEAN NOT NULL,   -- the code carries a placeholder X
            parent VARCHAR,                 -- the code (or block, or chapter) one level up
            category VARCHAR,               -- first three characters; NULL for chapters and blocks
            block VARCHAR,                  -- innermost block (section) id
            chapter INTEGER NOT NULL,
            depth INTEGER NOT NULL,         -- 0 chapter, 1.. blocks, then categories and below
            PRIMARY KEY (code, kind)
        );
        CREATE TABLE notes (
            code VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,          -- inclusion_term | includes | excludes1 | excludes2 | code_first |
                                            -- use_additional_code | code_also | notes | seventh_character_note
            seq INTEGER NOT NULL,
            text VARCHAR NOT NULL
        );
        CREATE TABLE seventh_characters (
            code VARCHAR NOT NULL,          -- where the sevenChrDef is declared; it applies to all leaves below
            character VARCHAR NOT NULL,
            meaning VARCHAR NOT NULL
        );
        """
    )


def _m0002_indexes(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE INDEX codes_nodot ON codes (code_nodot);
        CREATE INDEX codes_parent ON codes (parent);
        CREATE INDEX notes_code ON notes (code);
        """
    )


def _m0003_symptoms(con: duckdb.DuckDBPyConnection) -> None:
    """Plain-language symptom descriptions per code (``icdreason scrape symptoms``) and the log of every attempt."""
    con.execute(
        """
        CREATE TABLE symptoms (
            code VARCHAR NOT NULL,          -- dotted ICD-10-CM code the description is attached to
            code_nodot VARCHAR NOT NULL,
            source VARCHAR NOT NULL,        -- gesund | medlineplus | ...
            source_code VARCHAR,            -- the source's own key (an ICD-10-GM code, the code asked for)
            mapping VARCHAR NOT NULL,       -- exact | prefix4 | parent | category: how the page maps to this code
            language VARCHAR NOT NULL,      -- de | en
            title VARCHAR,
            text VARCHAR NOT NULL,
            url VARCHAR,
            fetched_at TIMESTAMP NOT NULL,
            http_status INTEGER,
            content_hash VARCHAR NOT NULL,  -- sha256 of the stored text
            PRIMARY KEY (code, source)
        );
        CREATE INDEX symptoms_nodot ON symptoms (code_nodot);
        CREATE TABLE scrape_log (
            source VARCHAR NOT NULL,
            code VARCHAR NOT NULL,          -- the code that was asked for
            url VARCHAR,
            outcome VARCHAR NOT NULL,       -- stored | not_found | skipped | failed
            reason VARCHAR,                 -- e.g. robots_disallowed, http_404, empty_page, captcha, timeout
            http_status INTEGER,
            attempted_at TIMESTAMP NOT NULL,
            PRIMARY KEY (source, code)
        );
        """
    )


def _m0004_guidelines(con: duckdb.DuckDBPyConnection) -> None:
    """The ICD-10-CM Official Guidelines for Coding and Reporting as a section tree (``icdreason scrape guidelines``)."""
    con.execute(
        """
        CREATE TABLE guidelines (
            id VARCHAR PRIMARY KEY,         -- I, I.A, I.C, I.C.9, I.C.9.a, II, II.A, ...
            parent VARCHAR,
            level INTEGER NOT NULL,         -- 0 section, 1 A/B/C, 2 numbered part (I.C.N chapter), 3 lettered subsection
            seq INTEGER NOT NULL,           -- document order
            section VARCHAR NOT NULL,       -- I | II | III | IV
            chapter INTEGER,                -- the ICD-10-CM chapter for I.C.N and below, else NULL
            title VARCHAR NOT NULL,
            text VARCHAR NOT NULL,          -- the section's own text, without its subsections
            page_start INTEGER,
            page_end INTEGER,
            source VARCHAR,                 -- the PDF file/URL or the JSON directory it came from
            imported_at TIMESTAMP NOT NULL
        );
        CREATE INDEX guidelines_chapter ON guidelines (chapter);
        """
    )


def _m0005_guideline_paths(con: duckdb.DuckDBPyConnection) -> None:
    """Where each guideline passage sits in its JSON file (``icdreason kb import-guidelines``): its heading path, and
    the strings of a list leaf. Rows stored before this migration keep NULL in both."""
    con.execute(
        """
        ALTER TABLE guidelines ADD COLUMN path VARCHAR[];   -- headings from the top of its file down to it, as written
        ALTER TABLE guidelines ADD COLUMN items VARCHAR[];  -- a list of strings in the file; text holds them as
                                                            -- bullet lines ('- item'), in order
        """
    )


def _m0006_alphabetic_index(con: duckdb.DuckDBPyConnection) -> None:
    """The ICD-10-CM Alphabetic Index and its tables (``kb build --index``, ``kb import-index``): one row per term
    of the Index to Diseases and Injuries, the External Cause index, the Neoplasm Table and the Table of Drugs."""
    con.execute(
        """
        CREATE TABLE index_files (
            source VARCHAR PRIMARY KEY,     -- index | eindex | neoplasm | drug
            file VARCHAR NOT NULL,          -- the file's name as loaded
            release VARCHAR,                -- its <version>, e.g. 2025
            title VARCHAR,
            sha256 VARCHAR NOT NULL,        -- of the file as read (compressed when it was compressed)
            provenance VARCHAR,             -- where it came from (shipped files say; '' for a file a user gave)
            losses VARCHAR,                 -- what it lacks against the official file ('' when complete)
            terms INTEGER NOT NULL,
            codes INTEGER NOT NULL,         -- codes and table cells
            codes_missing INTEGER NOT NULL, -- of those, codes the tabular release of this KB does not have
            xrefs_unresolved INTEGER NOT NULL,  -- see/see-also targets no term was found for
            loaded_at TIMESTAMP NOT NULL
        );
        CREATE TABLE index_terms (
            id INTEGER NOT NULL,            -- document order, unique across the four files
            source VARCHAR NOT NULL,
            parent INTEGER,                 -- the term one level up (NULL for a main term)
            main INTEGER NOT NULL,          -- the main term it sits under (itself for a main term)
            level INTEGER NOT NULL,         -- 0 main term, 1..9 subterm
            title VARCHAR NOT NULL,         -- the title without its nonessential modifiers
            nemod VARCHAR NOT NULL,         -- the nonessential modifiers, e.g. '(acute) (double)'; '' when none
            path VARCHAR NOT NULL,          -- 'Pneumonia › aspiration › due to'
            code VARCHAR,                   -- as printed: a trailing '-' means more characters are needed
            manif VARCHAR,                  -- manifestation code printed in brackets after the code
            see VARCHAR,
            see_also VARCHAR,
            subcat VARCHAR,
            seecat VARCHAR,
            warning VARCHAR
        );
        CREATE TABLE index_cells (
            term INTEGER NOT NULL,          -- a Neoplasm or Drug table row (index_terms.id)
            col INTEGER NOT NULL,           -- its column (index_columns)
            code VARCHAR NOT NULL
        );
        CREATE TABLE index_columns (
            source VARCHAR NOT NULL,        -- neoplasm | drug
            col INTEGER NOT NULL,
            heading VARCHAR NOT NULL        -- e.g. 'Malignant Primary', 'Poisoning Accidental (unintentional)'
        );
        CREATE TABLE index_xrefs (
            term INTEGER NOT NULL,          -- the term that refers
            kind VARCHAR NOT NULL,          -- see | see_also | subcat | seecat
            target INTEGER,                 -- the term referred to, when the reference names one
            target_source VARCHAR,          -- its file (neoplasm / drug for references into the tables)
            col INTEGER,                    -- the table column a reference names (malignant, poisoning, ...)
            code VARCHAR                    -- 'T71-' for 'see category T71'
        );
        CREATE INDEX index_terms_code ON index_terms (code);
        """
    )


MIGRATIONS: list[Migration] = [
    ("0001_core_tables", _m0001_core),
    ("0002_lookup_indexes", _m0002_indexes),
    ("0003_symptoms", _m0003_symptoms),
    ("0004_guidelines", _m0004_guidelines),
    ("0005_guideline_paths", _m0005_guideline_paths),
    ("0006_alphabetic_index", _m0006_alphabetic_index),
]


def register(name: str, apply: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
    """Add an additive migration (a new table) from another module; names must sort after the existing ones."""
    if any(existing == name for existing, _ in MIGRATIONS):
        return
    MIGRATIONS.append((name, apply))
