"""`icdreason scrape guidelines` on a PDF with the CMS heading scheme, the JSON export and `kb import-guidelines`."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
from guidelines_pdf import build_guidelines_pdf


@pytest.fixture(scope="module")
def guidelines_pdf(tmp_path_factory):
    return build_guidelines_pdf(tmp_path_factory.mktemp("pdf") / "fy-2025-icd-10-cm-coding-guidelines.pdf")


def _sections(kb_file):
    con = duckdb.connect(str(kb_file), read_only=True)
    try:
        return con.execute("SELECT id, parent, level, section, chapter, title, text FROM guidelines ORDER BY seq"
                           ).fetchall()
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
    chapter9 = json.loads((out / "chapter_9.json").read_text())
    assert list(chapter9)[:3] == ["9. Chapter 9: Diseases Of The Circulatory System (I00-I99)", "a. Hypertension",
                                  "b. Atherosclerotic Coronary Artery Disease and Angina"]
    assert chapter9["a. Hypertension"].startswith("The classification presumes")

    other = tmp_path / "other.duckdb"
    shutil.copy(built_kb, other)
    result = runner.invoke(app, ["kb", "import-guidelines", str(out), "--kb", str(other)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Imported 43 guideline sections" in result.stderr
    assert _sections(other) == stored

    # the authors' release has only chapter files: those import on their own
    (out / "sections.json").unlink()
    result = runner.invoke(app, ["kb", "import-guidelines", str(out), "--kb", str(other)])
    assert result.exit_code == 0
    assert _sections(other) == [row for row in stored if row[4] is not None]


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
    assert result.exit_code == 2 and "heading -> text" in result.stderr
