"""The enrichment API: symptoms up the hierarchy, the most relevant guideline section, and `kb lookup`."""

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


def _add_symptom(kb_file, code, source, text, language="de"):
    from icdreason.codes import normalize

    con = duckdb.connect(str(kb_file))
    con.execute("INSERT INTO symptoms VALUES (?, ?, ?, ?, 'exact', ?, ?, ?, NULL, now(), 200, 'h')",
                [code, normalize(code), source, code, language, f"title {code}", text])
    con.close()


@pytest.fixture
def enriched_kb(kb_file, tmp_path):
    from icdreason.kb import KnowledgeBase
    from icdreason.scrape import parse_pdf, store_sections

    _add_symptom(kb_file, "I21", "gesund", "Sie haben einen akuten Herzinfarkt.")
    _add_symptom(kb_file, "I21.4", "medlineplus", "A heart attack happens when blood flow stops.", "en")
    _add_symptom(kb_file, "E11", "gesund", "Sie haben Diabetes Typ 2.")
    _add_symptom(kb_file, "E11", "medlineplus", "Type 2 diabetes is the most common form.", "en")
    with KnowledgeBase.open(kb_file, read_only=False) as base:
        store_sections(base, parse_pdf(build_guidelines_pdf(tmp_path / "g.pdf")), "g.pdf")
    with KnowledgeBase.open(kb_file) as base:
        yield base


def test_symptoms_walk_up_the_hierarchy(enriched_kb):
    from icdreason.kb.enrich import symptoms

    found = symptoms(enriched_kb, "i21.a1")
    assert (found.code, found.from_code, found.inherited, found.text) == \
        ("I21.A1", "I21", True, "Sie haben einen akuten Herzinfarkt.")
    exact = symptoms(enriched_kb, "I214")
    assert (exact.from_code, exact.source, exact.inherited) == ("I21.4", "medlineplus", False)
    assert symptoms(enriched_kb, "E11.9").source == "gesund"                      # the paper's source first
    assert symptoms(enriched_kb, "E11.9", sources=("medlineplus",)).language == "en"
    assert symptoms(enriched_kb, "J45.909") is None
    assert symptoms(enriched_kb, "not a code") is None


def test_guideline_puts_the_most_relevant_subsection_first(enriched_kb):
    from icdreason.kb.enrich import guideline

    assert [s.id for s in guideline(enriched_kb, "I21.4")][:2] == ["I.C.9.d", "I.C.9"]   # myocardial infarction
    assert guideline(enriched_kb, "I10")[0].id == "I.C.9.a"                               # hypertension
    assert guideline(enriched_kb, "I11.0")[0].title == "Hypertension"
    assert guideline(enriched_kb, "M80.08XA")[0].id == "I.C.13.b"                          # osteoporosis fracture
    assert [s.id for s in guideline(enriched_kb, "J18.9")] == ["I.C.10"]                   # only the chapter part
    assert guideline(enriched_kb, "XYZ") == []


def test_enrichment_for_fills_the_record_fields(enriched_kb):
    from icdreason.kb.enrich import enrichment_for

    fields = enrichment_for(enriched_kb, "I21.A1")
    assert fields["symptoms"] == "Sie haben einen akuten Herzinfarkt." and fields["symptoms_from"] == "I21"
    assert fields["guideline_section"] == "I.C.9.d"
    # the first line says where the passage comes from: the chapter, then the heading as the guidelines print it
    assert fields["guideline"].startswith("Chapter 9 › d. Acute myocardial infarction (AMI)\n1) Type 1 ST elevation")
    assert fields["enrichment_source"] == "scraped" and fields["tabular_notes"] is None
    assert enrichment_for(enriched_kb, None) == dict.fromkeys(
        ["symptoms", "symptoms_from", "guideline", "guideline_section", "tabular_notes", "enrichment_source"])


def test_a_kb_without_rows_or_tables_falls_back_to_the_tabular_notes(kb, built_kb, tmp_path):
    from icdreason.kb import KnowledgeBase
    from icdreason.kb.enrich import TABULAR_LABEL, enrichment_for, enrichment_notice, enrichment_source

    assert enrichment_source(kb) == "tabular" and "icdreason kb import-guidelines" in enrichment_notice(kb)
    fields = enrichment_for(kb, "I21.4")
    assert [fields[k] for k in ("symptoms", "symptoms_from", "guideline", "guideline_section")] == [None] * 4
    assert fields["enrichment_source"] == "tabular"
    lines = fields["tabular_notes"].splitlines()
    # the code's own notes first, then its category's, each under its code and description
    assert lines[:3] == [TABULAR_LABEL, "I21.4 Non-ST elevation (NSTEMI) myocardial infarction",
                         "- Inclusion terms: Acute subendocardial myocardial infarction; Non-Q wave myocardial "
                         "infarction NOS; Nontransmural myocardial infarction NOS; Type 1 non-ST elevation "
                         "myocardial infarction"]
    assert lines[3] == "I21 Acute myocardial infarction"
    assert "- Excludes2: old myocardial infarction (I25.2); postmyocardial infarction syndrome (I24.1); " \
           "subsequent type 1 myocardial infarction (I22.-)" in lines
    e119 = enrichment_for(kb, "E11.9")["tabular_notes"]
    assert "- Excludes1: type 2 diabetes mellitus, without complications in remission (E11.A)" in e119
    assert "- Use additional code: code to identify control using: injectable non-insulin antidiabetic drugs " \
           "(Z79.85); insulin (Z79.4)" in e119
    assert enrichment_for(kb, "XYZ") == dict.fromkeys(fields)  # no code: nothing, and no source
    old = tmp_path / "old.duckdb"
    shutil.copy(built_kb, old)
    con = duckdb.connect(str(old))
    con.execute("DROP TABLE symptoms; DROP TABLE scrape_log; DROP TABLE guidelines")
    con.close()
    assert enrichment_for(KnowledgeBase(old, duckdb.connect(str(old), read_only=True)), "I21.4") == fields


def test_reads_through_a_kb_see_its_own_writes(kb_file, tmp_path):
    from icdreason.kb import KnowledgeBase
    from icdreason.kb.enrich import enrichment_for
    from icdreason.kb.scraped import ScrapeLogEntry, SymptomRow
    from icdreason.scrape import parse_pdf, store_sections

    heart = SymptomRow("I21.4", "medlineplus", "I21.4", "exact", "en", "Heart Attack",
                       "A heart attack happens when blood flow stops.", None, 200, "h")
    with KnowledgeBase.open(kb_file, read_only=False) as base:
        assert enrichment_for(base, "I21.41")["symptoms"] is None and base.chapter_guidelines(9) == []
        assert not base.has_rows("symptoms") and base.symptom_codes("medlineplus") == set()
        base.record_scrape([heart], [ScrapeLogEntry("medlineplus", "I21.4", None, "stored", "exact", 200),
                                     ScrapeLogEntry("medlineplus", "J45", None, "not_found", "http_404", 404)])
        assert base.has_rows("symptoms") and base.symptom_codes("medlineplus") == {"I21.4"}
        assert base.logged_codes("medlineplus", ["stored", "not_found"]) == {"I21.4", "J45"}
        assert enrichment_for(base, "I21.41")["symptoms_from"] == "I21.4"
        with pytest.raises(duckdb.Error):  # a failed write leaves nothing behind
            base.record_scrape([heart._replace(code="E11", text=None)])
        assert base.symptom_codes("medlineplus") == {"I21.4"}
        store_sections(base, parse_pdf(build_guidelines_pdf(tmp_path / "g.pdf")), "g.pdf")
        assert base.chapter_guidelines(9)[0].id == "I.C.9"
        assert enrichment_for(base, "I21.4")["guideline_section"] == "I.C.9.d"
        assert store_sections(base, [], "nothing") == 0
        assert base.chapter_guidelines(9) == [] and not base.has_rows("guidelines")


def test_kb_lookup_shows_symptoms_and_guideline(runner, enriched_kb):
    from icdreason.cli import app

    enriched_kb.close()
    result = runner.invoke(app, ["kb", "lookup", "I21.A1", "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    card = json.loads(result.stdout)
    assert card["symptoms"] == "Sie haben einen akuten Herzinfarkt." and card["symptoms_from"] == "I21"
    assert card["guideline_section"] == "I.C.9.d"
    assert card["guideline"].startswith("Chapter 9 › d. Acute myocardial infarction (AMI): 1) Type 1 ST")
    assert card["guideline_path"] == ["Chapter 9: Diseases Of The Circulatory System (I00-I99)",
                                      "d. Acute myocardial infarction (AMI)"]
    panel = runner.invoke(app, ["kb", "lookup", "I21.A1"]).stdout
    assert "symptoms: Sie haben einen akuten Herzinfarkt." in panel
    assert "guideline: Chapter 9 › d. Acute myocardial" in panel


def test_fresh_database_has_the_scrape_tables(kb):
    def columns(table):
        return [r[0] for r in kb.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()]

    assert columns("symptoms") == ["code", "code_nodot", "source", "source_code", "mapping", "language", "title",
                                   "text", "url", "fetched_at", "http_status", "content_hash"]
    assert columns("scrape_log") == ["source", "code", "url", "outcome", "reason", "http_status", "attempted_at"]
    assert columns("guidelines") == ["id", "parent", "level", "seq", "section", "chapter", "title", "text",
                                     "page_start", "page_end", "source", "imported_at", "path", "items"]
