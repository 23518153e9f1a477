"""The knowledge base built from the CMS tabular XML: hierarchy, 7th characters, billable set, schema, robustness."""

import duckdb
import pytest
import simple_icd_10_cm as cm

from icdreason.codes import CHAPTER_RANGES, chapter_of
from icdreason.errors import KnowledgeBaseError
from icdreason.kb import KnowledgeBase, build_kb


def test_fresh_database_columns(kb):
    columns = {
        table: [r[0] for r in kb.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()]
        for table in ("codes", "notes", "seventh_characters", "chapters", "meta")
    }
    assert columns["codes"] == ["code", "code_nodot", "description", "kind", "billable", "placeholder", "parent",
                                "category", "block", "chapter", "depth"]
    assert columns["notes"] == ["code", "kind", "seq", "text"]
    assert columns["seventh_characters"] == ["code", "character", "meaning"]
    assert columns["chapters"] == ["number", "roman", "title", "first_category", "last_category"]
    assert kb.release == "2026"


def test_billable_set_equals_simple_icd_10_cm(kb):
    # simple_icd_10_cm reports 74,736 leaves; 12 of them are empty super-blocks (C00-C96, V00-X58, ...), not codes.
    leaves = [c for c in cm.get_all_codes(with_dots=True) if cm.is_leaf(c)]
    assert len(leaves) == 74_736
    theirs = {c for c in leaves if cm.is_category_or_subcategory(c) or not cm.is_chapter_or_block(c)}
    ours = set(kb.billable_codes())
    assert len(ours) == 74_719
    assert ours == theirs


def test_every_billable_code_is_in_its_official_chapter_range(kb):
    rows = kb.con.execute("SELECT code, chapter FROM codes WHERE billable").fetchall()
    wrong = [(code, ch) for code, ch in rows if chapter_of(code).number != ch]
    assert wrong == []


def test_chapters_table_matches_official_ranges(kb):
    built = {n: (first, last) for n, _, first, last, _ in kb.chapters()}
    assert built == {c.number: (c.first, c.last) for c in CHAPTER_RANGES}
    assert built[3] == ("D50", "D89") and built[7] == ("H00", "H59") and built[8] == ("H60", "H95")
    assert built[22] == ("U00", "U85")


@pytest.mark.parametrize(
    "code, path",
    [
        ("S72.001A", "19 S70-S79 | S72 S72.0 S72.00 S72.001"),
        ("T36.0X1A", "19 T07-T88 T36-T50 | T36 T36.0 T36.0X T36.0X1"),
        ("O09.A1", "15 O09 | O09 O09.A"),  # a one-category block shares its id with the category
        ("Z3A.01", "21 Z30-Z39 | Z3A Z3A.0"),
        ("M1A.0110", "13 M00-M25 M05-M14 | M1A M1A.0 M1A.01 M1A.011"),
    ],
)
def test_hierarchy_of_real_codes(kb, code, path):
    """Chapter, (nested) blocks, then category and subcategories down to the parent."""
    ancestors = kb.ancestors(code)
    groups, codes = path.split(" | ")
    assert [a.code for a in ancestors if a.kind in ("chapter", "block")] == groups.split()
    assert [a.code for a in ancestors if a.kind not in ("chapter", "block")] == codes.split()
    assert [a.kind for a in ancestors][0] == "chapter"
    assert kb.lookup(code).billable


def test_seventh_character_expansion(kb):
    assert kb.description("S72.001A") == (
        "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture"
    )
    assert not kb.lookup("S72.001").billable  # a leaf that takes 7th characters is a header
    assert kb.lookup("T36.0X1A").placeholder
    assert kb.lookup("M1A.0110").description.endswith("without tophus (tophi)")
    assert {c.code for c in kb.children("M1A.011")} == {"M1A.0110", "M1A.0111"}
    # The S06 rule written in prose: 7th characters D and S do not apply with 6th character 7 or 8.
    assert kb.lookup("S06.377A") is not None
    assert kb.lookup("S06.377D") is None and kb.lookup("S06.378S") is None
    assert kb.lookup("S06.376D") is not None


def test_notes_and_seventh_character_definitions(kb):
    notes = kb.notes("I21.4")
    assert "Non-Q wave myocardial infarction NOS" in notes["inclusion_term"]
    assert "cervical and cervicothoracic disc disorders (M50.-)" in kb.notes("M51")["excludes2"]
    assert kb.seventh_characters("S72.001A")["A"] == "initial encounter for closed fracture"


def test_nested_blocks(kb):
    assert kb.lookup("C00-C14").parent == "C00-C75"
    assert kb.lookup("C00-C75").parent == "C00-C96"
    assert kb.lookup("C00-C96").parent == "2"


def test_info_counts(kb):
    info = kb.info()
    assert info["billable"] == 74_719
    assert info["kinds"]["chapter"] == 22
    assert sum(ch["billable"] for ch in info["chapters"]) == 74_719


def test_build_refuses_to_overwrite_without_force(writable_kb):
    with pytest.raises(KnowledgeBaseError, match="--force"):
        build_kb(writable_kb)


def test_corrupt_file_names_the_fix(tmp_path):
    bad = tmp_path / "broken.duckdb"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KnowledgeBaseError, match="not a DuckDB database, not a knowledge base: if it is a damaged "
                                                 "knowledge base, delete it and run `icdreason kb build`"):
        KnowledgeBase.open(bad)


def test_old_schema_names_the_fix(writable_kb):
    con = duckdb.connect(str(writable_kb))
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(KnowledgeBaseError, match="schema version 0.*kb build --force"):
        KnowledgeBase.open(writable_kb)


def test_missing_kb_is_built_on_first_use(tmp_path):
    messages = []
    path = tmp_path / "sub" / "kb.duckdb"
    with KnowledgeBase.open(path, progress=messages.append) as base:
        assert base.lookup("I10").billable
    assert any("building it from the bundled" in m for m in messages)
    assert not list(path.parent.glob("*.building"))


def test_missing_kb_without_build(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="icdreason kb build"):
        KnowledgeBase.open(tmp_path / "none.duckdb", build_if_missing=False)


def test_unwritable_location(tmp_path):
    # A path below a regular file can never be created, whoever runs the test (root ignores permission bits).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(KnowledgeBaseError, match="writable location"):
        build_kb(blocker / "kb.duckdb")


def test_build_from_another_release(tmp_path):
    source = tmp_path / "mini.xml"
    source.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<ICD10CM.tabular><version>2025</version>
<chapter><name>9</name><desc>Diseases of the circulatory system (I00-I99)</desc>
<section id="I10-I1A"><desc>Hypertensive diseases (I10-I1A)</desc>
<diag><name>I10</name><desc>Essential (primary) hypertension</desc></diag>
</section></chapter></ICD10CM.tabular>"""
    )
    path = build_kb(tmp_path / "kb.duckdb", source)
    with KnowledgeBase.open(path) as base:
        assert base.release == "2025"
        assert base.billable_codes() == ["I10"]
        assert base.meta["source_file"] == "mini.xml"


def test_build_from_a_file_that_is_not_tabular_xml(tmp_path):
    from icdreason.errors import InputError

    source = tmp_path / "notes.xml"
    source.write_text("<html><body>not it</body></html>")
    with pytest.raises(InputError, match="tabular"):
        build_kb(tmp_path / "kb.duckdb", source)
    assert not (tmp_path / "kb.duckdb").exists()


def test_search_finds_what_coders_type(kb):
    assert kb.search("nstemi", k=3)[0].code == "I21.4"
    hits = kb.search("lumbar disc radiculopathy", k=5)
    assert hits[0].code == "M51.16"
    assert all(h.billable for h in hits)


def test_a_file_of_another_kind_is_not_taken_for_a_knowledge_base(tmp_path):
    from icdreason.audit.store import AuditStore

    audit = tmp_path / "audit.duckdb"
    AuditStore.open(audit)
    with pytest.raises(KnowledgeBaseError, match="is an icdreason audit database, not a knowledge base: pass --kb the "
                                                 "knowledge-base file"):
        KnowledgeBase.open(audit)
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(KnowledgeBaseError, match="empty.duckdb is not an icdreason knowledge base: .*--force"):
        KnowledgeBase.open(empty)
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(KnowledgeBaseError, match="is a DuckDB file but not an icdreason knowledge base"):
        KnowledgeBase.open(other)


def test_opening_an_older_file_adds_the_tables_it_lacks(writable_kb):
    con = duckdb.connect(str(writable_kb))
    con.execute("DROP TABLE guidelines; DELETE FROM _migrations WHERE name IN ('0004_guidelines', "
                "'0005_guideline_paths')")
    con.close()
    with KnowledgeBase.open(writable_kb) as base:  # read-only: reopened for writing once to add the table
        assert "guidelines" in base.tables() and not base.has_rows("guidelines")
        assert base.info()["migrations"][-3:] == ["0004_guidelines", "0005_guideline_paths", "0006_alphabetic_index"]


def test_duckdb_errors_become_one_line_messages(tmp_path):
    from icdreason.db import explain
    from icdreason.kb.store import KB_STORE

    path = tmp_path / "kb.duckdb"
    locked = explain(path, KB_STORE, duckdb.IOException(
        f'IO Error: Could not set lock on file "{path}": Conflicting lock is held in /usr/bin/python3 (PID 4242) '
        "by user ann. See also https://duckdb.org/docs/stable/connect/concurrency"))
    assert str(locked) == f"knowledge base {path} is locked by another process (PID 4242): wait for it to finish"
    corrupt = explain(path, KB_STORE, duckdb.IOException("Corrupt database file: block 12 has a wrong checksum"),
                      opening=True)
    assert str(corrupt) == (f"{path} is not a DuckDB file this tool can open (Corrupt database file: block 12 has a "
                            "wrong checksum): if it is a damaged knowledge base, delete it and run `icdreason kb "
                            "build`; otherwise pass --kb the knowledge-base file")
