"""`icdreason scrape symptoms --source medlineplus` against a local server answering like MedlinePlus Connect."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
from scrape_server import Answer, FixtureServer, page


@pytest.fixture
def kb_file(writable_kb):
    """These tests write to the knowledge base (scraped or imported rows): each gets a private copy."""
    return writable_kb


def _by_code(path: str) -> str:
    parts = urlsplit(path)
    if parts.path != "/service":
        return parts.path
    query = parse_qs(parts.query)
    assert query["mainSearchCriteria.v.cs"] == ["2.16.840.1.113883.6.90"]
    assert query["knowledgeResponseType"] == ["application/json"]
    return query["mainSearchCriteria.v.c"][0]


@pytest.fixture
def connect_server():
    routes = {
        "I21.4": [page("medlineplus/I21.4.json")],
        "E11.9": [Answer(503, "busy", headers={"Retry-After": "0"}), page("medlineplus/E11.9.json")],
        "R69": [page("medlineplus/R69.json")],
        "I10": [Answer(200, '{"feed": {"entry": [', content_type="application/json")],
        "J18.9": [Answer(200, "<html><head><title>Access Denied</title></head><body>unusual traffic from your "
                              "network</body></html>")],
    }
    with FixtureServer(routes, resolve=_by_code) as server:
        yield server


def test_medlineplus_connect_answers_are_stored_in_english(runner, kb_file, connect_server, tmp_path):
    from icdreason.cli import app

    codes = tmp_path / "codes.txt"
    codes.write_text("I21.4 E11.9 R69 I10 J18.9\n")
    args = ["scrape", "symptoms", "--source", "medlineplus", "--codes", str(codes), "--base-url",
            f"{connect_server.base_url}/service", "--rate", "200", "--retries", "2", "--backoff", "0.01", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads(result.stdout)
    assert summary["stored"] == 2
    assert summary["not_found"] == {"no_description": 1, "malformed": 1}
    assert summary["failed"] == {"captcha": 1}
    assert connect_server.hits["E11.9"] == 2          # 503 then 200

    con = duckdb.connect(str(kb_file), read_only=True)
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT code, language, title, text, url, mapping FROM symptoms WHERE source = 'medlineplus'").fetchall()}
    con.close()
    assert sorted(rows) == ["E11.9", "I21.4"]
    language, title, text, url, mapping = rows["I21.4"]
    assert (language, title, url, mapping) == ("en", "Heart Attack", "https://medlineplus.gov/heartattack.html",
                                              "exact")
    assert text.splitlines()[0].startswith("Each year almost 800,000 Americans have a heart attack.")
    assert "Chest discomfort" in text and "<p>" not in text

    again = json.loads(runner.invoke(app, args).stdout)
    assert again["already"] == 4 and again["pages"] == 1   # only the blocked one is asked again


def test_saved_json_answers_parse_offline(runner, kb_file, tmp_path):
    from icdreason.cli import app
    from scrape_server import FIXTURES

    saved = tmp_path / "answers"
    saved.mkdir()
    (saved / "answer-1.json").write_bytes((FIXTURES / "medlineplus" / "I21.4.json").read_bytes())
    (saved / "E11.9.json").write_bytes((FIXTURES / "medlineplus" / "E11.9.json").read_bytes())
    result = runner.invoke(app, ["scrape", "symptoms", "--source", "medlineplus", "--from-dir", str(saved), "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    assert json.loads(result.stdout)["stored"] == 2
