"""The scraper caps what it reads and stores: an answer larger than the page cap (or a gzip bomb that would
decompress past it) is read no further and logged as ``too_large``; a stored description is cut to the description
cap. One cap applies to fetched answers and to saved pages (``--from-dir``)."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc

import duckdb
import pytest
from scrape_server import FIXTURES, Answer, FixtureServer
from test_scrape_medlineplus import _by_code

from icdreason.cli import app


@pytest.fixture
def kb_file(writable_kb):
    """These tests write to the knowledge base (scraped or imported rows): each gets a private copy."""
    return writable_kb


MAX_PAGE_BYTES = 5_000_000  # icdreason.scrape.limits, as documented in docs/usage-scrape.md
MAX_DESCRIPTION_CHARS = 10_000


def _answer(summary_html: str, code: str) -> bytes:
    """A MedlinePlus Connect answer for ``code`` whose summary is ``summary_html``."""
    feed = json.loads((FIXTURES / "medlineplus" / "I21.4.json").read_text())
    feed["feed"]["entry"][0]["summary"]["_value"] = summary_html
    for category in feed["feed"]["category"]:
        if category.get("scheme") == "mainSearchCriteria.v.c":
            category["term"] = code
    return json.dumps(feed).encode()


@pytest.fixture(scope="module")
def answers():
    huge = _answer("<p>" + "crushing chest pain " * 2_600_000 + "</p>", "I21.4")  # 52 MB
    bomb = gzip.compress(_answer("<p>" + "0" * 60_000_000 + "</p>", "E11.9"), compresslevel=9)  # ~60 KB -> 60 MB
    long = _answer("<p>" + "Chest pain spreading to the left arm. " * 8_000 + "</p>", "J18.9")  # 300 KB: < the cap
    return {"huge": huge, "bomb": bomb, "long": long}


@pytest.fixture
def server(answers):
    routes = {
        "I21.4": [Answer(200, answers["huge"], content_type="application/json")],
        "E11.9": [Answer(200, answers["bomb"], content_type="application/json", headers={"Content-Encoding": "gzip"})],
        "J18.9": [Answer(200, answers["long"], content_type="application/json")],
    }
    with FixtureServer(routes, resolve=_by_code) as s:
        yield s


def test_sizes_of_the_answers_and_the_documented_caps(answers):
    from icdreason.scrape import limits

    assert len(answers["huge"]) > 52_000_000 and len(answers["bomb"]) < 500_000
    assert (limits.MAX_PAGE_BYTES, limits.MAX_DESCRIPTION_CHARS) == (MAX_PAGE_BYTES, MAX_DESCRIPTION_CHARS)


def test_a_huge_answer_and_a_gzip_bomb_are_not_read_past_the_cap(server):
    from icdreason.scrape.http import FetchOptions, PoliteFetcher

    with PoliteFetcher(FetchOptions(rate=500, respect_robots=False, retries=0)) as fetcher:
        for code in ("I21.4", "E11.9"):
            tracemalloc.start()
            started = time.monotonic()
            result = fetcher.fetch(f"{server.base_url}/service?mainSearchCriteria.v.cs=2.16.840.1.113883.6.90&"
                                   f"mainSearchCriteria.v.c={code}&knowledgeResponseType=application/json")
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert (result.outcome, result.reason, result.text) == ("skipped", "too_large", None), code
            assert peak < 4 * MAX_PAGE_BYTES, (code, peak)  # never the whole 52 MB / 60 MB in memory
            assert time.monotonic() - started < 20


def test_scrape_stores_nothing_too_large_and_cuts_long_descriptions(runner, kb_file, server, tmp_path):
    codes = tmp_path / "codes.txt"
    codes.write_text("I21.4 E11.9 J18.9\n")
    result = runner.invoke(app, ["scrape", "symptoms", "--source", "medlineplus", "--codes", str(codes), "--base-url",
                                 f"{server.base_url}/service", "--rate", "500", "--retries", "0", "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads(result.stdout)
    assert summary["stored"] == 1 and summary["skipped"] == {"too_large": 2}
    con = duckdb.connect(str(kb_file), read_only=True)
    stored = con.execute("SELECT code, length(text), text FROM symptoms").fetchall()
    logged = con.execute("SELECT code, outcome, reason FROM scrape_log ORDER BY code").fetchall()
    con.close()
    ((code, length, text),) = stored
    assert code == "J18.9" and length <= MAX_DESCRIPTION_CHARS and text.endswith(" …")
    assert text.startswith("Chest pain spreading to the left arm.")
    assert logged == [("E11.9", "skipped", "too_large"), ("I21.4", "skipped", "too_large"),
                      ("J18.9", "stored", "exact")]


def test_saved_pages_use_the_same_caps(runner, kb_file, answers, tmp_path):
    saved = tmp_path / "answers"
    saved.mkdir()
    (saved / "I21.4.json").write_bytes(answers["huge"][:MAX_PAGE_BYTES + 1])
    (saved / "J18.9.json").write_bytes(answers["long"])
    result = runner.invoke(app, ["scrape", "symptoms", "--source", "medlineplus", "--from-dir", str(saved), "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads(result.stdout)
    assert summary["stored"] == 1 and summary["skipped"] == {"too_large": 1}
    con = duckdb.connect(str(kb_file), read_only=True)
    assert con.execute("SELECT code, length(text) <= ? FROM symptoms", [MAX_DESCRIPTION_CHARS]).fetchall() == [
        ("J18.9", True)]
    con.close()


def test_compressed_answers_within_the_cap_are_decoded():
    import zlib

    from icdreason.scrape.limits import TooLarge, decode_capped

    body = b'{"feed": {"entry": []}} ' * 1000
    raw_deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    encoded = {"gzip": gzip.compress(body), "deflate": zlib.compress(body),
               "raw deflate": raw_deflate.compress(body) + raw_deflate.flush(), None: body}
    for name, data in encoded.items():
        chunks = [data[i:i + 100] for i in range(0, len(data), 100)]
        assert decode_capped(chunks, "deflate" if name == "raw deflate" else name, len(body)) == body, name
    with pytest.raises(TooLarge):
        decode_capped([gzip.compress(body)], "gzip", len(body) - 1)
