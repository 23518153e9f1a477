"""`icdreason kb import-guidelines` on files in the nested shape of the authors' release: heading paths kept, shown by
`kb lookup` and enrichment, exported back exactly, and files of another shape refused in one line."""

from __future__ import annotations

import json

import duckdb
import pytest
from guidelines_nested import CIRCULATORY, NESTED_FILES, write_nested_guidelines


@pytest.fixture
def kb_file(writable_kb):
    """These tests write to the knowledge base (scraped or imported rows): each gets a private copy."""
    return writable_kb


@pytest.fixture
def nested_dir(tmp_path):
    return write_nested_guidelines(tmp_path / "icd_10_cm_guidelines")


@pytest.fixture
def imported(runner, kb_file, nested_dir):
    from icdreason.cli import app

    result = runner.invoke(app, ["kb", "import-guidelines", str(nested_dir)])
    assert result.exit_code == 0, result.output + result.stderr
    return result


def _rows(kb_file, where="TRUE"):
    con = duckdb.connect(str(kb_file), read_only=True)
    try:
        return con.execute(f"SELECT id, parent, level, chapter, title, text, path, items FROM guidelines "
                           f"WHERE {where} ORDER BY seq").fetchall()
    finally:
        con.close()


def test_the_nested_shape_imports_with_the_heading_path_of_every_text(imported, kb_file):
    assert " ".join(imported.stderr.split()).endswith(
        "chapters 5, 9, 10, 15, 18, 20, 21 (7 files, nested); missing chapters: 1-4, 6-8, 11-14, 16, 17, 19, 22")
    assert "Imported 32 guideline sections" in imported.stderr
    hypertension = [CIRCULATORY, "Hypertension"]
    assert _rows(kb_file, "chapter = 9")[:3] == [
        # the chapter and every heading above a text are rows without text of their own
        ("I.C.9", "I.C", 2, 9, CIRCULATORY, "", [CIRCULATORY], None),
        ("I.C.9.s1", "I.C.9", 3, 9, "Hypertension", "", hypertension, None),
        ("I.C.9.s1.s1", "I.C.9.s1", 4, 9, "description", NESTED_FILES["chapter_9.json"][CIRCULATORY]["Hypertension"][
            "description"], [*hypertension, "description"], None),
    ]
    # a list of texts is one passage: its items as bullet lines, in order; the list itself is kept
    (laterality,) = _rows(kb_file, "title = 'Laterality defaults'")
    assert laterality[5] == ("- Right-handed patient, side not documented: the dominant side is affected.\n"
                             "- Left-handed patient, side not documented: the nondominant side is affected.\n"
                             "- Handedness not documented: the right side is the dominant side.")
    assert laterality[7] == [line[2:] for line in laterality[5].splitlines()]
    assert laterality[6] == [CIRCULATORY, "Sequelae of cerebrovascular disease", "Laterality defaults"]
    # headings with the guidelines' own marks keep them as ids; the chapter number comes from the file name
    assert [(r[0], r[4]) for r in _rows(kb_file, "chapter = 18")] == [
        ("I.C.18", "Signs and symptoms not classified elsewhere (R00-R99)"),
        ("I.C.18.a", "Use of symptom codes"), ("I.C.18.b", "Coma scale")]
    assert [r[4] for r in _rows(kb_file, "level = 2")] == [
        "Mental and behavioural disorders (F01 – F99)", CIRCULATORY, "Respiratory system diseases (J00-J99), U07.0",
        "Pregnancy and childbirth (O00-O9A)", "Signs and symptoms not classified elsewhere (R00-R99)",
        "QExternal causes of harm (V00-Y99)", "Chapter 21: Health status and contact with services (Z00–Z99)"]


def test_kb_lookup_shows_the_hypertension_guidance_with_its_heading_path(runner, imported):
    from icdreason.cli import app

    result = runner.invoke(app, ["kb", "lookup", "I11.0", "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    card = json.loads(result.stdout)
    assert card["guideline_path"] == [CIRCULATORY, "Hypertension", "Hypertension with Heart Disease"]
    assert card["guideline_section"] == "I.C.9.s1.s2"
    assert card["guideline"].startswith("Chapter 9 › Hypertension › Hypertension with Heart Disease: Choose a code "
                                        "from category I11 when heart failure")
    panel = runner.invoke(app, ["kb", "lookup", "I11.0"]).stdout
    assert "guideline: Chapter 9 › Hypertension › Hypertension with Heart Disease: Choose a code" in panel


@pytest.mark.parametrize("code, where", [
    ("I11.0", "Chapter 9 › Hypertension › Hypertension with Heart Disease"),
    ("I12.9", "Chapter 9 › Hypertension › Hypertensive Chronic Kidney Disease"),
    ("I10", "Chapter 9 › Hypertension › Hypertension, Controlled"),               # the text names I10
    ("I21.4", "Chapter 9 › Acute myocardial infarction › Type 1 STEMI and NSTEMI"),  # I21.0–I21.4 covers it
    ("I22.0", "Chapter 9 › Acute myocardial infarction › Subsequent infarction"),
    ("I69.351", "Chapter 9 › Sequelae of cerebrovascular disease › Laterality defaults"),
    ("J44.1", "Chapter 10 › COPD and Asthma › Acute exacerbation of chronic obstructive bronchitis and asthma"),
    ("U07.0", "Chapter 10 › Lung injury from vaping › reference"),   # chapter 22's code, listed in chapter 10's title
    ("F03.90", "Chapter 5 › Dementia › severity"),                  # a generic heading ranks by the one above it
    ("Z79.4", "Chapter 21 › Categories › Status › examples › Z79"),  # a heading that is the category
    ("R40.20", "Chapter 18 › b. Coma scale"),
])
def test_enrichment_finds_the_passage_for_the_code(imported, kb_file, code, where):
    from icdreason.kb import KnowledgeBase
    from icdreason.kb.enrich import enrichment_for

    with KnowledgeBase.open(kb_file) as kb:
        fields = enrichment_for(kb, code)
    assert fields["guideline"].split("\n")[0] == where


def test_a_code_no_passage_speaks_about_gets_none(imported, kb_file):
    from icdreason.kb import KnowledgeBase
    from icdreason.kb.enrich import enrichment_for, guideline

    with KnowledgeBase.open(kb_file) as kb:
        assert guideline(kb, "I48.91")[0].score <= 0            # atrial fibrillation: ranked, but nothing matches
        assert enrichment_for(kb, "I48.91")["guideline"] is None
        assert enrichment_for(kb, "K35.80")["guideline"] is None  # chapter 11 has no file


def test_export_then_import_round_trips_exactly(runner, imported, kb_file, nested_dir, tmp_path):
    from icdreason.cli import app

    out = tmp_path / "exported"
    result = runner.invoke(app, ["kb", "export-guidelines", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(NESTED_FILES)
    for name, data in NESTED_FILES.items():  # the same keys in the same order, the same texts and lists
        assert json.dumps(json.loads((out / name).read_text()), ensure_ascii=False) == json.dumps(data,
                                                                                                  ensure_ascii=False)
    before = _rows(kb_file)
    result = runner.invoke(app, ["kb", "import-guidelines", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert _rows(kb_file) == before


_LONG = "Diseases of the circulatory system, with a title long enough to be shortened (I00-I99)"


@pytest.mark.parametrize("name, data, message", [
    ("chapter_9.json", {CIRCULATORY: {"Hypertension": ["Link them.", 2]}},
     f'chapter_9.json: $["{CIRCULATORY}"]["Hypertension"][1]: expected text in a list, got a number'),
    ("chapter_9.json", {_LONG: {"Hypertension": {"rule": None}}},
     'chapter_9.json: $["Diseases of the circulatory system, wit…"]["Hypertension"]["rule"]: expected text, a list '
     'of texts or an object of headings, got null'),
    ("chapter_9.json", {CIRCULATORY: {"Hypertension": {}}},
     f'chapter_9.json: $["{CIRCULATORY}"]["Hypertension"]: expected text, a list of texts or an object of headings, '
     'got an empty object'),
    ("chapter_9.json", {CIRCULATORY: "One.", "a. Hypertension": {"b": "Two."}},
     'chapter_9.json: $["a. Hypertension"]: expected text, got an object (a file with several top-level keys is the '
     'flat heading → text shape; a nested file has one, the chapter title)'),
    ("chapter_9.json", "Hypertension",
     "chapter_9.json: $: expected an object with the chapter title as its one key, got text"),
    ("chapter_9.json", {"Respiratory system diseases (J00-J99)": {"Asthma": "Code it."}},
     "chapter_9.json: the title's code range J00-J99 is in chapter 10, not 9 (I00-I99): rename the file or fix the "
     "title"),
    ("chapter_21.json", {"Chapter 20: Health status (Z00–Z99)": {"Z79": "Report it."}},
     "chapter_21.json: the title says chapter 20, the file name 21: rename the file or fix the title"),
    ("chapter_23.json", {"Extra (U00-U85)": {"a": "b"}},
     "chapter_23.json: ICD-10-CM has chapters 1 to 22: rename the file"),
    ("sections.json", {"Section I. Conventions": {"C. Chapter-specific guidelines": {"9. Chapter 9 (I00-I99)": "x"}}},
     "sections.json and chapter_9.json both hold section I.C.9: keep each chapter in its own chapter_N.json only"),
])
def test_a_file_of_another_shape_is_refused_in_one_line_and_nothing_is_imported(
        runner, imported, kb_file, nested_dir, name, data, message):
    from icdreason.cli import app

    before = _rows(kb_file)
    (nested_dir / name).write_text(json.dumps(data))
    result = runner.invoke(app, ["kb", "import-guidelines", str(nested_dir)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {message}\n"
    assert _rows(kb_file) == before


def test_a_heading_written_twice_is_refused(runner, kb_file, nested_dir):
    from icdreason.cli import app

    (nested_dir / "chapter_15.json").write_text(
        '{"Pregnancy (O00-O9A)": {"Precedence": "First.", "Precedence": "Second."}}')
    result = runner.invoke(app, ["kb", "import-guidelines", str(nested_dir)])
    assert result.exit_code == 2
    assert result.stderr == ("error: chapter_15.json: $[\"Pregnancy (O00-O9A)\"]: heading 'Precedence' appears "
                             "twice: give each heading once\n")


# What `0004_guidelines` created, literally: a knowledge base written before heading paths were kept.
_GUIDELINES_0004 = """
DROP TABLE guidelines;
CREATE TABLE guidelines (
    id VARCHAR PRIMARY KEY, parent VARCHAR, level INTEGER NOT NULL, seq INTEGER NOT NULL, section VARCHAR NOT NULL,
    chapter INTEGER, title VARCHAR NOT NULL, text VARCHAR NOT NULL, page_start INTEGER, page_end INTEGER,
    source VARCHAR, imported_at TIMESTAMP NOT NULL
);
CREATE INDEX guidelines_chapter ON guidelines (chapter);
INSERT INTO guidelines VALUES
    ('I.C.9', 'I.C', 2, 1, 'I', 9, 'Chapter 9: Diseases of the Circulatory System (I00-I99)', 'Chapter rules.', 30, 30,
     'g.pdf', TIMESTAMP '2026-03-01 09:00:00'),
    ('I.C.9.a', 'I.C.9', 3, 2, 'I', 9, 'Hypertension', 'Hypertension with heart disease goes to I11.', 30, 31,
     'g.pdf', TIMESTAMP '2026-03-01 09:00:00');
DELETE FROM _migrations WHERE name = '0005_guideline_paths';
"""


def test_an_older_knowledge_base_gains_the_path_columns_and_keeps_its_rows(runner, kb_file, tmp_path):
    from icdreason.cli import app
    from icdreason.kb import KnowledgeBase
    from icdreason.kb.enrich import enrichment_for

    con = duckdb.connect(str(kb_file))
    con.execute(_GUIDELINES_0004)
    con.close()
    with KnowledgeBase.open(kb_file) as kb:
        assert "0005_guideline_paths" in kb.info()["migrations"]
        assert [(r.id, r.path, r.items) for r in kb.guidelines()] == [("I.C.9", None, None), ("I.C.9.a", None, None)]
        fields = enrichment_for(kb, "I11.0")  # without a path the passage says its id and title
    assert fields["guideline"] == "I.C.9.a Hypertension\nHypertension with heart disease goes to I11."
    out = tmp_path / "out"
    assert runner.invoke(app, ["kb", "export-guidelines", str(out)]).exit_code == 0
    assert json.loads((out / "chapter_9.json").read_text()) == {
        "Chapter 9: Diseases of the Circulatory System (I00-I99)": {
            "": "Chapter rules.", "a. Hypertension": "Hypertension with heart disease goes to I11."}}
