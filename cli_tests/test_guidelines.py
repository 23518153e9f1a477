"""`icdreason scrape guidelines` on a PDF with the CMS heading scheme, its nested JSON export, and
`kb import-guidelines` of that export and of the flat shape earlier icdreason versions wrote (files in the shape of
the authors' release: test_guidelines_nested.py)."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
from guidelines_pdf import build_guidelines_pdf


@pytest.fixture
def kb_file(writable_kb):
    """These tests write to the knowledge base (scraped or imported rows): each gets a private copy."""
    return writable_kb


@pytest.fixture(scope="module")
def guidelines_pdf(tmp_path_factory):
    return build_guidelines_pdf(tmp_path_factory.mktemp("pdf") / "fy-2025-icd-10-cm-coding-guidelines.pdf")


def _sections(kb_file, columns="id, parent, level, section, chapter, title, text"):
    con = duckdb.connect(str(kb_file), read_only=True)
    try:
        return con.execute(f"SELECT {columns} FROM guidelines ORDER BY seq").fetchall()
    finally:
        con.close()


def test_pdf_parses_into_the_section_tree(guidelines_pdf):
    from icdreason.scrape import parse_pdf

    sections = {s.id: s for s in parse_pdf(guidelines_pdf)}
    assert [i for i in sections if "." not in i] == ["I", "II", "III", "IV"]
    assert [f"I.C.{n}" in sections for n in range(1, 22)] == [True] * 21
    assert {sections[f"I.C.{n}"].chapter for n in range(1, 22)} == set(range(1, 22))
    assert sections["I.C.9"].title == "Chapter 9: Diseases Of The Circulatory System (I00-I99)"
    assert sections["I.C.18"].title.endswith("Not Elsewhere Classified (R00-R99)")  # wrapped heading rejoined
    hypertension = sections["I.C.9.a"]
    assert (hypertension.title, hypertension.level, hypertension.chapter, hypertension.parent) == \
        ("Hypertension", 3, 9, "I.C.9")
    assert hypertension.text.startswith("The classification presumes a causal relationship")
    assert "1) Hypertension with Heart Disease" in hypertension.text      # deeper levels stay in the text
    assert sections["I.C.9.d"].title == "Acute myocardial infarction (AMI)"
    assert sections["I.A.2"].title == "Format and Structure:"
    assert sections["II.B"].parent == "II" and sections["IV.A"].section == "IV"
    # the table of contents, running headers and footers are not section text
    assert sections["I"].page_start == 3                                   # page 2 is the table of contents
    assert sections["I"].page_end >= sections["I.C.21"].page_start >= sections["I.C.9"].page_start
    assert not any("Official Guidelines" in s.text or "Page " in s.text for s in sections.values())


def test_scrape_guidelines_export_and_import_round_trip(runner, kb_file, built_kb, guidelines_pdf, tmp_path):
    from icdreason.cli import app

    out = tmp_path / "json"
    result = runner.invoke(app, ["scrape", "guidelines", "--pdf", str(guidelines_pdf), "--export-json", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "21 chapter-specific parts" in result.stderr
    stored = _sections(kb_file)
    assert len(stored) == 43
    assert sorted(p.name for p in out.iterdir()) == sorted([f"chapter_{n}.json" for n in range(1, 22)]
                                                           + ["sections.json"])
    # nested: the chapter title over its lettered subsections; the chapter's own text under the empty key, first
    chapter9 = json.loads((out / "chapter_9.json").read_text())
    assert list(chapter9) == ["Chapter 9: Diseases Of The Circulatory System (I00-I99)"]
    body = chapter9["Chapter 9: Diseases Of The Circulatory System (I00-I99)"]
    assert list(body)[:3] == ["", "a. Hypertension", "b. Atherosclerotic Coronary Artery Disease and Angina"]
    assert body[""] == "Guidance that applies to every code of chapter 9 is given here."
    assert body["a. Hypertension"].startswith("The classification presumes")
    sections = json.loads((out / "sections.json").read_text())
    assert list(sections)[:2] == ["Section I. Conventions, general coding guidelines and chapter specific guidelines",
                                  "Section II. Selection of Principal Diagnosis"]
    assert list(sections["Section II. Selection of Principal Diagnosis"])[:2] == [
        "", "A. Codes for symptoms, signs, and ill-defined conditions"]

    other = tmp_path / "other.duckdb"
    shutil.copy(built_kb, other)
    result = runner.invoke(app, ["kb", "import-guidelines", str(out), "--kb", str(other)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Imported 43 guideline sections" in result.stderr
    assert "chapters 1-21 (21 files, nested) and sections.json; missing chapters: 22" in " ".join(result.stderr.split())
    everything = "id, parent, level, section, chapter, title, text, path, items"
    assert _sections(other, everything) == _sections(kb_file, everything)
    # and the knowledge base exports the same files again, byte for byte
    again = tmp_path / "again"
    result = runner.invoke(app, ["kb", "export-guidelines", str(again), "--kb", str(other)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Wrote 43 guideline sections to 22 files" in result.stderr
    assert {p.name: p.read_bytes() for p in again.iterdir()} == {p.name: p.read_bytes() for p in out.iterdir()}

    # the authors' release has only chapter files: those import on their own
    (out / "sections.json").unlink()
    result = runner.invoke(app, ["kb", "import-guidelines", str(out), "--kb", str(other)])
    assert result.exit_code == 0
    assert _sections(other) == [row for row in stored if row[4] is not None]


def test_the_flat_shape_of_earlier_exports_still_imports(runner, kb_file, tmp_path):
    from icdreason.cli import app

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "chapter_9.json").write_text(json.dumps({
        "9. Chapter 9: Diseases of the Circulatory System (I00-I99)": "Rules for the whole chapter.",
        "a. Hypertension": "Link hypertension with heart disease unless the notes say otherwise.",
        "b. Angina": "Use the combination codes.",
    }))
    (flat / "chapter_10.json").write_text(json.dumps({
        "10. Chapter 10: Diseases of the Respiratory System (J00-J99)": "Breathing rules.",
        "a. Asthma": "Code the exacerbation.",
    }))
    (flat / "sections.json").write_text(json.dumps({
        "Section I. Conventions": "Read these first.",
        "A. Conventions for the ICD-10-CM": "General rules.",
        "1. The Alphabetic Index and Tabular List": "Look the term up in the index first.",
        "C. Chapter-Specific Coding Guidelines": "",
        "Section II. Selection of Principal Diagnosis": "The circumstances of admission decide.",
        "A. Codes for symptoms": "Not when a definitive diagnosis is known.",
    }))
    result = runner.invoke(app, ["kb", "import-guidelines", str(flat)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "chapters 9, 10 (2 files, flat) and sections.json" in " ".join(result.stderr.split())
    assert _sections(kb_file, "id, parent, level, section, chapter, title, text, path") == [
        ("I", None, 0, "I", None, "Conventions", "Read these first.", ["Section I. Conventions"]),
        ("I.A", "I", 1, "I", None, "Conventions for the ICD-10-CM", "General rules.",
         ["Section I. Conventions", "A. Conventions for the ICD-10-CM"]),
        ("I.A.1", "I.A", 2, "I", None, "The Alphabetic Index and Tabular List", "Look the term up in the index first.",
         ["Section I. Conventions", "A. Conventions for the ICD-10-CM", "1. The Alphabetic Index and Tabular List"]),
        ("I.C", "I", 1, "I", None, "Chapter-Specific Coding Guidelines", "",
         ["Section I. Conventions", "C. Chapter-Specific Coding Guidelines"]),
        ("I.C.9", "I.C", 2, "I", 9, "Chapter 9: Diseases of the Circulatory System (I00-I99)",
         "Rules for the whole chapter.", ["9. Chapter 9: Diseases of the Circulatory System (I00-I99)"]),
        ("I.C.9.a", "I.C.9", 3, "I", 9, "Hypertension", "Link hypertension with heart disease unless the notes say "
         "otherwise.", ["9. Chapter 9: Diseases of the Circulatory System (I00-I99)", "a. Hypertension"]),
        ("I.C.9.b", "I.C.9", 3, "I", 9, "Angina", "Use the combination codes.",
         ["9. Chapter 9: Diseases of the Circulatory System (I00-I99)", "b. Angina"]),
        ("I.C.10", "I.C", 2, "I", 10, "Chapter 10: Diseases of the Respiratory System (J00-J99)", "Breathing rules.",
         ["10. Chapter 10: Diseases of the Respiratory System (J00-J99)"]),
        ("I.C.10.a", "I.C.10", 3, "I", 10, "Asthma", "Code the exacerbation.",
         ["10. Chapter 10: Diseases of the Respiratory System (J00-J99)", "a. Asthma"]),
        ("II", None, 0, "II", None, "Selection of Principal Diagnosis", "The circumstances of admission decide.",
         ["Section II. Selection of Principal Diagnosis"]),
        ("II.A", "II", 1, "II", None, "Codes for symptoms", "Not when a definitive diagnosis is known.",
         ["Section II. Selection of Principal Diagnosis", "A. Codes for symptoms"]),
    ]
    # exported, the same sections come out nested, and read back as they were
    out = tmp_path / "nested"
    assert runner.invoke(app, ["kb", "export-guidelines", str(out)]).exit_code == 0
    assert json.loads((out / "chapter_9.json").read_text()) == {
        "9. Chapter 9: Diseases of the Circulatory System (I00-I99)": {
            "": "Rules for the whole chapter.",
            "a. Hypertension": "Link hypertension with heart disease unless the notes say otherwise.",
            "b. Angina": "Use the combination codes."}}
    before = _sections(kb_file, "*")
    assert runner.invoke(app, ["kb", "import-guidelines", str(out)]).exit_code == 0
    assert [row[:10] + row[12:] for row in _sections(kb_file, "*")] == [row[:10] + row[12:] for row in before]


def test_guidelines_download_from_url(runner, kb_file, guidelines_pdf):
    from icdreason.cli import app
    from scrape_server import Answer, FixtureServer

    pdf = Answer(200, guidelines_pdf.read_bytes(), content_type="application/pdf")
    with FixtureServer({"/files/guidelines.pdf": [pdf]}) as server:
        result = runner.invoke(app, ["scrape", "guidelines", "--url", f"{server.base_url}/files/guidelines.pdf"])
    assert result.exit_code == 0, result.output + result.stderr
    assert len(_sections(kb_file)) == 43


def test_bad_guideline_inputs_name_the_fix(runner, kb_file, tmp_path):
    from icdreason.cli import app

    fake = tmp_path / "notes.pdf"
    fake.write_text("not a pdf")
    result = runner.invoke(app, ["scrape", "guidelines", "--pdf", str(fake)])
    assert result.exit_code == 2 and "is not a readable PDF" in result.stderr
    result = runner.invoke(app, ["scrape", "guidelines"])
    assert result.exit_code == 2 and "exactly one of --pdf FILE or --url URL" in result.stderr
    result = runner.invoke(app, ["kb", "import-guidelines", str(tmp_path)])
    assert result.exit_code == 2 and "no chapter_N.json files" in result.stderr
    (tmp_path / "chapter_1.json").write_text('["not", "an", "object"]')
    result = runner.invoke(app, ["kb", "import-guidelines", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: chapter_1.json: $: expected an object with the chapter title as its one "
                                     "key, got a list")
