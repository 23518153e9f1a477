"""`icdreason scrape symptoms --source gesund` against a local server serving pages in gesund.bund.de's structure."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
from scrape_server import FIXTURES, Answer, FixtureServer, page


@pytest.fixture
def kb_file(writable_kb):
    """These tests write to the knowledge base (scraped or imported rows): each gets a private copy."""
    return writable_kb


CODES = ["J45", "I10", "I21.4", "I21", "I21.A1", "E11", "E10", "K35", "N39", "R51", "R52", "M54", "Z00", "J18",
         "R69", "XYZ"]


@pytest.fixture
def gesund_server():
    server = FixtureServer({})
    suche = "/icd-code-suche/"
    server.routes.update({
        "/robots.txt": [Answer(200, (FIXTURES / "robots.txt").read_text(), content_type="text/plain")],
        suche + "j45": [page("gesund/j45.html")],
        suche + "i10": [page("gesund/i10.html")],
        suche + "i21-4": [page("gesund/i21-4.html")],
        suche + "i21": [Answer(429, "slow down", headers={"Retry-After": "1"}), page("gesund/i21.html")],
        suche + "e11": [Answer(301, headers={"Location": "/icd-code-suche/e11-seite"})],
        suche + "e11-seite": [page("gesund/e11-seite.html")],
        suche + "e10": [Answer(302, headers={"Location": f"http://localhost:{server.port}/icd-code-suche/e10"})],
        suche + "k35": [Answer(500, "<html><body><h1>Internal Server Error</h1></body></html>")],
        suche + "n39": [page("gesund/i10.html", delay=1.0)],
        suche + "r51": [Answer(200, "")],
        suche + "r52": [page("gesund/captcha.html")],
        suche + "m54": [page("gesund/m54.html")],
        suche + "z00": [page("gesund/i10.html")],
        suche + "r69": [page("gesund/not-found-soft.html")],
    })
    with server:
        yield server


def _run(runner, server, codes_file, *extra):
    from icdreason.cli import app

    args = ["scrape", "symptoms", "--source", "gesund", "--codes", str(codes_file), "--base-url", server.base_url,
            "--rate", "200", "--concurrency", "4", "--timeout", "0.3", "--retries", "1", "--backoff", "0.01",
            "--json", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def _rows(kb_file, sql):
    con = duckdb.connect(str(kb_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_scrape_stores_good_pages_and_says_why_others_were_not(runner, kb_file, gesund_server, tmp_path):
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("# codes to scrape\n" + "\n".join(CODES[:8]) + "\n" + ", ".join(CODES[8:]) + "\n")
    summary = _run(runner, gesund_server, codes_file)

    assert summary["codes"] == 15 and summary["pages"] == 14
    assert summary["stored"] == 7
    assert summary["not_found"] == {"http_404": 1, "empty_page": 1, "error_page": 1}
    assert summary["skipped"] == {"robots_disallowed": 1, "off_host_redirect": 1, "unknown_code": 1}
    assert summary["failed"] == {"http_500": 1, "timeout": 1, "captcha": 1}

    rows = {r[0]: r[1:] for r in _rows(kb_file, "SELECT code, mapping, source_code, language, title, text, url, "
                                                "http_status FROM symptoms WHERE source = 'gesund'")}
    assert sorted(rows) == ["E11", "I10", "I21", "I21.4", "I21.A1", "J45", "M54"]
    assert rows["J45"][:4] == ("exact", "J45", "de", "Asthma bronchiale")
    assert rows["J45"][4].startswith("Sie haben Asthma.") and "\n" in rows["J45"][4]   # one line per paragraph
    assert rows["I21.A1"][:2] == ("parent", "I21") and rows["I21.A1"][4] == rows["I21"][4]   # no GM page: category
    assert rows["E11"][5].endswith("/icd-code-suche/e11-seite")                              # in-host redirect
    assert "Rückenschmerzen" in rows["M54"][4] and "weniger Wochen" in rows["M54"][4]          # malformed HTML
    assert rows["I21"][6] == 200
    assert "J45.0" not in rows  # GM-only code (CM has no J45.0): never stored
    texts = " ".join(r[4] for r in rows.values())
    assert "Roboter" not in texts and "nicht gefunden" not in texts

    log = dict(((r[0]), (r[1], r[2])) for r in _rows(kb_file, "SELECT code, outcome, reason FROM scrape_log"))
    assert log["Z00"] == ("skipped", "robots_disallowed")
    assert log["E10"] == ("skipped", "off_host_redirect")
    assert log["R52"] == ("failed", "captcha")
    assert log["N39"] == ("failed", "timeout")
    assert log["J18"] == ("not_found", "http_404")

    hits = gesund_server.hits
    assert hits["/icd-code-suche/z00"] == 0                       # robots.txt honoured
    assert hits["/icd-code-suche/e10"] == 1                       # the off-host target was never requested
    assert hits["/icd-code-suche/k35"] == 2 and hits["/icd-code-suche/n39"] == 2   # one retry each
    first, second = gesund_server.times["/icd-code-suche/i21"]
    assert second - first >= 0.95                                  # Retry-After: 1 honoured
    assert all(ua.startswith("icdreason/") for ua in gesund_server.user_agents)

    # a second run fetches nothing it already has: only the transient failures are tried again
    before = dict(hits)
    again = _run(runner, gesund_server, codes_file)
    assert again["stored"] == 0 and again["already"] == 12 and again["pages"] == 3
    changed = {path for path in hits if hits[path] != before.get(path, 0)}
    assert changed == {"/robots.txt", "/icd-code-suche/k35", "/icd-code-suche/n39", "/icd-code-suche/r52"}
    assert len(_rows(kb_file, "SELECT * FROM symptoms")) == 7


def test_refresh_fetches_stored_pages_again(runner, kb_file, gesund_server, tmp_path):
    codes_file = tmp_path / "codes.txt"
    codes_file.write_text("I10\n")
    assert _run(runner, gesund_server, codes_file)["stored"] == 1
    assert _run(runner, gesund_server, codes_file)["already"] == 1
    assert _run(runner, gesund_server, codes_file, "--refresh")["stored"] == 1
    assert gesund_server.hits["/icd-code-suche/i10"] == 2
    assert gesund_server.hits["/robots.txt"] == 2   # once per run


def test_from_dir_parses_a_saved_mirror(runner, kb_file, tmp_path):
    from icdreason.cli import app

    saved = tmp_path / "saved"
    mirror = saved / "gesund.bund.de" / "icd-code-suche"
    mirror.mkdir(parents=True)
    shutil.copy(FIXTURES / "gesund" / "j45.html", mirror / "j45")               # wget without extensions
    shutil.copy(FIXTURES / "gesund" / "i10.html", mirror / "i10.html")
    (mirror / "i21-4").mkdir()
    shutil.copy(FIXTURES / "gesund" / "i21-4.html", mirror / "i21-4" / "index.html")
    shutil.copy(FIXTURES / "gesund" / "captcha.html", mirror / "r52.html")
    shutil.copy(FIXTURES / "robots.txt", saved / "gesund.bund.de" / "robots.txt")
    (saved / "gesund.bund.de" / "style.css").write_text("body { color: black }")

    result = runner.invoke(app, ["scrape", "symptoms", "--source", "gesund", "--from-dir", str(saved), "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads(result.stdout)
    assert summary["stored"] == 3
    assert summary["skipped"] == {"unrecognised_file": 1}
    assert summary["failed"] == {"captcha": 1}
    rows = dict(_rows(kb_file, "SELECT code, url FROM symptoms"))
    assert rows == {"J45": "https://gesund.bund.de/icd-code-suche/j45",
                    "I10": "https://gesund.bund.de/icd-code-suche/i10",
                    "I21.4": "https://gesund.bund.de/icd-code-suche/i21-4"}
    again = json.loads(runner.invoke(app, ["scrape", "symptoms", "--source", "gesund", "--from-dir",
                                           str(saved), "--json"]).stdout)
    assert again["stored"] == 0 and again["already"] == 3


def test_choosing_codes_is_required_and_exclusive(runner, kb_file, tmp_path):
    from icdreason.cli import app

    result = runner.invoke(app, ["scrape", "symptoms", "--source", "gesund"])
    assert result.exit_code == 2 and "exactly one of --codes FILE, --chapter N or --all" in result.stderr
    result = runner.invoke(app, ["scrape", "symptoms", "--source", "nhs", "--all"])
    assert result.exit_code == 2 and "unknown source 'nhs'" in result.stderr
    assert "choose one of gesund, medlineplus" in result.stderr


def test_sources_are_found_by_name(monkeypatch):
    from icdreason.errors import UsageError
    from icdreason.scrape import get_source, source_names
    from icdreason.scrape.registry import SOURCES, register

    assert source_names() == ["gesund", "medlineplus"]
    assert type(get_source("medlineplus")).__name__ == "MedlinePlusConnect"
    monkeypatch.setitem(SOURCES, "gesund-mirror", "icdreason.scrape.gesund:GesundBund")
    mirror = get_source("gesund-mirror", "http://127.0.0.1:8080/")
    assert (mirror.name, mirror.url_for("J45")) == ("gesund", "http://127.0.0.1:8080/icd-code-suche/j45")
    with pytest.raises(UsageError, match="'module:Class'"):
        register("nhs", "nhs_source")


def test_gm_page_keys_and_mapping():
    from icdreason.scrape.gesund import GesundBund, gm_key, mapping

    assert [gm_key(c) for c in ("J45", "J45.909", "I21.A1", "S82.281A", "Z3A.01")] == ["J45", "J4590", "I21",
                                                                                      "S8228", None]
    assert [mapping("J45", "J45"), mapping("S8228", "S8228"), mapping("I2101", "I210"), mapping("I21A1", "I21")] == \
        ["exact", "exact_5th", "prefix4", "parent"]
    assert GesundBund().url_for("S8228") == "https://gesund.bund.de/icd-code-suche/s82-28"
