"""The ICD-10-CM Alphabetic Index: reading the XML, resolving "see", loading it into the knowledge base, looking terms
up the way a coder does (small fixtures written for these tests), and the files icdreason ships."""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import duckdb
import pytest
from lxml import etree

from icdreason.cli import app
from icdreason.errors import InputError
from icdreason.kb import KnowledgeBase
from icdreason.kb.alpha.parse import read_index
from icdreason.kb.alpha.shipped import shipped_files
from icdreason.kb.alpha.xrefs import resolve_all

FIXTURES = Path(__file__).parent / "fixtures" / "alpha_index"
SHIPPED = Path(__file__).resolve().parents[1] / "knowledge" / "index"
FILES = [FIXTURES / "index.xml", FIXTURES / "neoplasm.xml", FIXTURES / "drug.xml"]


@pytest.fixture(scope="module")
def fixture_kb(built_kb, tmp_path_factory) -> Path:
    """The session knowledge base with its index replaced by the three fixture files (nothing shipped)."""
    path = tmp_path_factory.mktemp("alpha") / "kb.duckdb"
    shutil.copy(built_kb, path)
    with KnowledgeBase.open(path, read_only=False) as kb:
        kb.import_index(FILES, shipped=False)
    return path


@pytest.fixture(scope="module")
def small(fixture_kb):
    with KnowledgeBase.open(fixture_kb) as kb:
        yield kb


@pytest.fixture(scope="module")
def default_kb(built_kb):
    """The session knowledge base (built with the shipped index), opened once for the tests that only read it."""
    with KnowledgeBase.open(built_kb) as kb:
        yield kb


def _term(parsed, path):
    i = parsed.terms["path"].index(path)
    return {k: v[i] for k, v in parsed.terms.items()}


# -- reading the XML ---------------------------------------------------------------------------------------------------
def test_fixtures_are_in_the_official_shape():
    for name, schema in (("index", "icd10cm-index-2025.xsd"), ("neoplasm", "icd-10-cm-drug-neoplasm-2025.xsd"),
                         ("drug", "icd-10-cm-drug-neoplasm-2025.xsd")):
        xsd = etree.XMLSchema(etree.parse(str(SHIPPED / schema)))
        assert xsd.validate(etree.parse(str(FIXTURES / f"{name}.xml"))), xsd.error_log.last_error


def test_terms_titles_modifiers_and_paths():
    parsed = read_index(FIXTURES / "index.xml")
    assert (parsed.kind, parsed.release) == ("index", "2099")
    myocardium = _term(parsed, "Infarct, infarction › myocardium, myocardial")
    assert myocardium["nemod"] == "(acute) (with stated duration of 4 weeks or less)"
    assert (myocardium["code"], myocardium["level"]) == ("I21.9", 1)
    assert _term(parsed, "Infarct, infarction › myocardium, myocardial › healed or old")["parent"] == myocardium["id"]
    # text after a nonessential modifier belongs to the title: "Cyst (colloid) NEC"
    assert _term(parsed, "Cyst NEC")["nemod"] == "(colloid)"
    assert _term(parsed, "Pneumonia › in › schistosomiasis")["manif"] == "J17"
    assert _term(parsed, "Lightning")["subcat"] == "T75.0"
    assert parsed.terms["id"] == sorted(parsed.terms["id"])  # document order


def test_tables_keep_codes_and_drop_empty_cells():
    neoplasm, drug = read_index(FIXTURES / "neoplasm.xml"), read_index(FIXTURES / "drug.xml")
    assert (neoplasm.kind, drug.kind) == ("neoplasm", "drug")
    assert neoplasm.columns[2] == "Malignant Primary" and drug.columns[7] == "Underdosing"
    upper = _term(neoplasm, "Neoplasm, neoplastic › lung › upper lobe")["id"]
    cells = {(t, c): code for t, c, code in zip(*neoplasm.cells.values())}
    assert cells[(upper, 2)] == "C34.1-" and (upper, 7) not in cells  # "-": no code
    heroin = _term(drug, "Heroin")["id"]
    assert sorted(c for t, c, _ in zip(*drug.cells.values()) if t == heroin) == [2, 3, 4, 5]  # "--" dropped


def test_compressed_files_and_files_that_are_not_an_index(tmp_path):
    packed = tmp_path / "index.xml.xz"
    packed.write_bytes(lzma.compress((FIXTURES / "index.xml").read_bytes()))
    assert len(read_index(packed)) == len(read_index(FIXTURES / "index.xml"))
    tabular = tmp_path / "tabular.xml"
    tabular.write_text("<ICD10CM.tabular><version>2026</version></ICD10CM.tabular>")
    with pytest.raises(InputError, match="kb build --source"):
        read_index(tabular)
    broken = tmp_path / "broken.xml"
    broken.write_text("<ICD10CM.index><letter>")
    with pytest.raises(InputError, match="not well-formed"):
        read_index(broken)


def test_see_references_resolve_to_terms_and_tables():
    files, first = [], 0
    for f in FILES:
        files.append(read_index(f, first_id=first))
        first += len(files[-1])
    rows, unresolved = resolve_all(files)
    paths = {i: p for f in files for i, p in zip(f.terms["id"], f.terms["path"])}
    found = {(paths[t], k): (paths.get(target), source, col, code) for t, k, target, source, col, code in
             zip(*rows.values())}
    # lower case in the reference ("infarct, myocardium"), first alternative of each title
    assert found[("Attack, attacks › heart", "see")][0] == "Infarct, infarction › myocardium, myocardial"
    assert found[("Fracture, traumatic › hip", "see")][0] == "Fracture, traumatic › femur, femoral › neck"
    assert found[("Adenocarcinoma", "see_also")][1:3] == ("neoplasm", 2)   # malignant: column 2
    assert found[("Overdose, overdosage", "see")][1:3] == ("drug", 2)      # poisoning: column 2
    assert found[("Strangulation", "seecat")][3] == "T71-"
    assert unresolved == {}


# -- the knowledge base --------------------------------------------------------------------------------------------
def test_loaded_files_are_checked_against_the_tabular(small):
    files = {f.source: f for f in small.index_files()}
    assert set(files) == {"index", "neoplasm", "drug"}
    assert files["index"].release == "2099" and small.meta["index_release"] == "2099"
    assert files["index"].codes_missing == 1 and files["drug"].codes_missing == 0
    assert small.index_code_problems() == [("index", "Cyst NEC", "Q99.99")]
    assert small.info()["index"][0]["file"] == "index.xml"


def test_lay_terms_find_their_codes_with_the_index_path(small):
    first = small.search("heart attack", k=3)[0]
    assert first.code == "I21.9"
    assert first.index_path == "Attack, attacks › heart → see Infarct, infarction › myocardium, myocardial"
    pneumonia = small.search("community acquired pneumonia", k=3)[0]
    assert (pneumonia.code, pneumonia.index_path, pneumonia.unmatched) == ("J18.9", "Pneumonia",
                                                                          ("community", "acquired"))


def test_site_and_side_complete_a_code_that_needs_more_characters(small):
    assert small.search("cellulitis of the left leg", k=1)[0].code == "L03.116"
    assert small.search("right orbital cellulitis", k=1)[0].code == "H05.011"
    assert small.search("fracture of the right hip", k=1)[0].code == "S72.001A"  # initial encounter, closed


def test_the_tables_are_read_where_the_index_sends_the_coder(small):
    assert small.search("heroin overdose", k=1)[0].code == "T40.1X1A"
    assert small.search("intentional acetaminophen overdose", k=1)[0].code == "T39.1X2A"
    hit = small.search("adenocarcinoma of the right upper lobe of the lung", k=1)[0]
    assert hit.code == "C34.11" and "Neoplasm, neoplastic › lung › upper lobe" in hit.index_path


def test_term_lookup_shows_the_card_of_the_code_found(small):
    from icdreason.kb.lookup import describe_code

    card = describe_code(small, "heart attack")
    assert card["code"] == "I21.9" and card["looked_up"]["printed"] == "I21.9"
    assert describe_code(small, "L03.116")["index"] == [
        {"source": "index", "path": "Cellulitis › lower limb", "code": "L03.11-"}]
    assert not describe_code(small, "zzz qqq")["found"]


def test_without_an_index_everything_works_as_before(writable_kb):
    with KnowledgeBase.open(writable_kb, read_only=False) as kb:
        kb.import_index([], shipped=False)
        assert not kb.has_alphabetic_index and kb.index_files() == [] and kb.alphabetic_index is None
        hits = kb.search("nstemi", k=3)
        assert hits[0].code == "I21.4" and hits[0].index_path is None
        assert "index_release" not in kb.meta


def test_an_older_file_gets_the_index_tables_and_no_index(writable_kb):
    con = duckdb.connect(str(writable_kb))
    con.execute("DROP TABLE index_files; DROP TABLE index_terms; DROP TABLE index_cells; DROP TABLE index_columns; "
                "DROP TABLE index_xrefs; DELETE FROM _migrations WHERE name = '0006_alphabetic_index'")
    con.close()
    with KnowledgeBase.open(writable_kb) as kb:
        assert "0006_alphabetic_index" in kb.info()["migrations"]
        assert not kb.has_alphabetic_index and kb.search("nstemi", k=1)[0].code == "I21.4"


def test_index_tables_columns(kb):
    def columns(table):
        return [r[0] for r in kb.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()]

    assert columns("index_terms") == ["id", "source", "parent", "main", "level", "title", "nemod", "path", "code",
                                      "manif", "see", "see_also", "subcat", "seecat", "warning"]
    assert columns("index_cells") == ["term", "col", "code"]
    assert columns("index_xrefs") == ["term", "kind", "target", "target_source", "col", "code"]
    assert columns("index_files") == ["source", "file", "release", "title", "sha256", "provenance", "losses", "terms",
                                      "codes", "codes_missing", "xrefs_unresolved", "loaded_at"]


# -- the CLI -------------------------------------------------------------------------------------------------------
def test_build_with_given_files_and_import(runner, tmp_path, monkeypatch):
    path = tmp_path / "kb.duckdb"
    built = runner.invoke(app, ["kb", "build", "--kb", str(path), "--no-index", "--index", str(FILES[0])])
    assert built.exit_code == 0, built.stderr
    assert "index 2099 (index.xml): 27 terms, 13 codes, 1 not in the tabular 2026" in built.stderr
    info = json.loads(runner.invoke(app, ["kb", "info", "--kb", str(path), "--json"]).stdout)
    assert [f["source"] for f in info["index"]] == ["index"] and info["index_release"] == "2099"
    monkeypatch.setenv("ICDREASON_INDEX_DIR", "")  # nothing shipped: the other kinds stay empty
    imported = runner.invoke(app, ["kb", "import-index", "--kb", str(path), str(FILES[2]), str(FILES[0])])
    assert imported.exit_code == 0, imported.stderr
    info = json.loads(runner.invoke(app, ["kb", "info", "--kb", str(path), "--json"]).stdout)
    assert [f["source"] for f in info["index"]] == ["index", "drug"]
    shown = runner.invoke(app, ["kb", "search", "heroin overdose", "--limit", "2", "--kb", str(path)])
    assert "T40.1X1A" in shown.stdout and "index: Overdose, overdosage → see Table of Drugs › Heroin" in shown.stdout
    twice = runner.invoke(app, ["kb", "import-index", "--kb", str(path), str(FILES[0]), str(FILES[0])])
    assert twice.exit_code == 2 and "two files of the same kind" in twice.stderr


def test_lookup_of_a_term(runner, fixture_kb):
    result = runner.invoke(app, ["kb", "lookup", "heart attack", "--kb", str(fixture_kb)])
    assert result.exit_code == 0, result.stderr
    assert "Attack, attacks › heart → see Infarct" in result.stdout and "I21.9" in result.stdout


# -- the files icdreason ships ---------------------------------------------------------------------------------------
def test_shipped_files_are_intact_small_and_in_the_official_shape():
    shipped = {f.kind: f for f in shipped_files()}
    assert set(shipped) == {"index", "eindex", "neoplasm", "drug"}
    assert "RECONSTRUCTED" in shipped["index"].provenance and shipped["index"].losses
    assert all(not shipped[k].losses for k in ("eindex", "neoplasm", "drug"))
    for f in shipped.values():
        assert f.path.stat().st_size < 5_000_000
        assert f.release == "2025"
    xsd = etree.XMLSchema(etree.parse(str(SHIPPED / "icd-10-cm-drug-neoplasm-2025.xsd")))
    with lzma.open(shipped["neoplasm"].path) as fh:
        assert xsd.validate(etree.parse(fh))


def test_the_default_knowledge_base_has_the_shipped_index(default_kb):
    files = {f.source: f for f in default_kb.index_files()}
    assert set(files) == {"index", "eindex", "neoplasm", "drug"}
    assert all(f.codes_missing == 0 for f in files.values())  # every FY2025 index code is in the April-2026 tabular
    assert files["index"].terms == 81_024 and default_kb.meta["index_release"] == "2025"


@pytest.mark.parametrize("query, code", [
    ("heart attack", "I21.9"),
    ("community acquired pneumonia", "J18.9"),
    ("cellulitis of the left leg", "L03.116"),
    ("broken hip", "S72.009A"),                     # no side stated: unspecified femur
    ("bed sore sacrum stage 3", "L89.153"),
    ("lumbar disc radiculopathy", "M51.16"),
    ("paroxysmal atrial fibrillation", "I48.0"),
])
def test_lay_terms_on_the_shipped_index(default_kb, query, code):
    assert default_kb.search(query, k=3)[0].code == code
