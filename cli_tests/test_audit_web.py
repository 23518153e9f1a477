"""`icdreason audit serve`: the review as a web page, tested over HTTP with Starlette's TestClient.

Each test starts an audit on the five fixture predictions, serves it with :func:`create_app` and checks what the
pages show and which rows land in the DuckDB audit store.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from audit_fixtures import NOTES, record, rows, write_predictions
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from icdreason.audit import AuditStore, start_audit
from icdreason.audit.web import ReviewDesk, create_app, is_loopback
from icdreason.kb import KnowledgeBase

@pytest.fixture(scope="module")
def shared_kb(built_kb):
    """The session's knowledge base, opened once for this file and only read (the description search test uses its
    own copy, ``kb``: the search index is cached next to the file)."""
    with KnowledgeBase.open(built_kb, build_if_missing=False) as base:
        yield base


def open_desk(tmp_path: Path, kb, reviewers=("alice",), *, records=None, blind=False) -> ReviewDesk:
    preds = write_predictions(tmp_path / "pred.jsonl", records)
    store = AuditStore.open(tmp_path / "audit.duckdb")
    start_audit(store, preds, kb)
    for name in reviewers:
        store.add_reviewer(name)
    return ReviewDesk(store, kb, list(reviewers), blind=blind)


class Browser:
    """One signed-in browser: a TestClient holding the reviewer's cookie, and the forms of the page it shows."""

    def __init__(self, desk: ReviewDesk, reviewer: str = "alice"):
        self.desk = desk
        self.client = TestClient(create_app(desk))
        signed = self.client.get(f"/?token={desk.reviewers[reviewer].token}", follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/review"
        self.page = self.client.get("/review")

    @property
    def soup(self) -> BeautifulSoup:
        return BeautifulSoup(self.page.text, "html.parser")

    def case_id(self) -> str:
        return self.soup.find("input", attrs={"name": "case_id"})["value"]

    def post(self, action: str, **fields: str):
        """Post ``action`` from the page shown (its CSRF secret and case id), then follow to the next page."""
        soup = self.soup
        form = {"csrf": soup.find("input", attrs={"name": "csrf"})["value"], "case_id": self.case_id(),
                "action": action, **fields}
        self.page = self.client.post("/review", data=form)
        return self.page

    def text(self, element_id: str) -> str:
        found = self.soup.find(id=element_id)
        return found.get_text(" ", strip=True) if found else ""


def test_the_page_needs_the_token_printed_at_start(tmp_path, shared_kb):
    desk = open_desk(tmp_path, shared_kb)
    client = TestClient(create_app(desk))
    for path in ("/", "/review", "/report"):
        assert client.get(path).status_code == 403
    assert "token" in client.get("/review").text
    assert client.get("/api/code?q=E11").status_code == 403
    assert client.post("/review", data={"action": "accept", "case_id": "n1"}).status_code == 403
    assert client.get("/?token=wrong-token").status_code == 403
    assert rows(tmp_path / "audit.duckdb") == []

    signed = client.get(f"/?token={desk.reviewers['alice'].token}", follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/review"  # the token leaves the address bar
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/review")
    assert page.status_code == 200 and "Case 1/5" in page.text


def test_decisions_land_in_the_audit_store(tmp_path, shared_kb):
    desk = open_desk(tmp_path, shared_kb)
    browser = Browser(desk)
    assert browser.text("model-code") == "I21.4"
    assert browser.text("model-description") == "Non-ST elevation (NSTEMI) myocardial infarction"
    assert [m.get_text() for m in browser.soup.select("#note mark")] == [
        "He describes crushing chest pain radiating to the left arm since this morning.",
        "Troponin elevated at 2.3 ng/mL.", "ECG shows ST depression in V4-V6."]
    assert "Chapter 9 (I00-I99): Diseases of the circulatory system" in browser.text("prediction")

    browser.post("accept")
    assert "n1: accepted I21.4" in browser.text("notice") and "Case 2/5" in browser.text("case-number")
    refused = browser.post("correct", code="E11")                     # a header: refused, the typed code kept
    assert refused.status_code == 422
    assert "E11 is a header, not billable" in browser.text("notice")
    assert browser.soup.find(id="correct-code")["value"] == "E11"
    browser.post("correct", code="e11.65")
    assert "n2: corrected to E11.65" in browser.text("notice")
    browser.post("reject", reason="premature_closure", comment="jumps to pneumonia in the first line", code="J15.9")
    browser.post("flag")
    assert "flagged" in browser.text("notice")
    browser.post("skip")
    assert "Case 5/5" in browser.text("case-number")

    assert rows(tmp_path / "audit.duckdb") == [
        ("alice", "n1", "accept", None, None, None, False),
        ("alice", "n2", "correct", "E11.65", None, None, False),
        ("alice", "n3", "reject", "J15.9", "premature_closure", "jumps to pneumonia in the first line", False),
        ("alice", "n4", "skip", None, None, None, True),
    ]
    seconds = rows(tmp_path / "audit.duckdb", "SELECT seconds, source FROM decisions")
    assert all(s is not None and 0 <= s < 60 and source == "session" for s, source in seconds)
    assert "3/5 decided" in browser.text("progress-text")


def test_refused_posts_record_nothing(tmp_path, shared_kb):
    desk = open_desk(tmp_path, shared_kb)
    browser = Browser(desk)
    csrf = desk.reviewers["alice"].csrf
    post = browser.client.post
    assert post("/review", data={"csrf": "forged", "case_id": "n1", "action": "accept"}).status_code == 403
    assert post("/review", data={"case_id": "n1", "action": "accept"}).status_code == 403
    assert post("/review", data={"csrf": csrf, "case_id": "n1", "action": "accept"},
                headers={"origin": "http://evil.example"}).status_code == 403
    assert post("/review", content=f'{{"csrf": "{csrf}", "case_id": "n1", "action": "accept"}}',
                headers={"content-type": "application/json"}).status_code == 403
    assert post("/review", data={"csrf": csrf, "case_id": "n1", "action": "delete"}).status_code == 400
    assert post("/review", data={"csrf": csrf, "case_id": "n1", "action": "reject"}).status_code == 422
    assert post("/review", data={"csrf": csrf, "case_id": "n1", "action": "reject", "reason": "other"}
                ).status_code == 422  # 'other' needs a comment
    assert rows(tmp_path / "audit.duckdb") == []

    browser.post("accept")
    stale = post("/review", data={"csrf": csrf, "case_id": "n1", "action": "accept"})  # the key pressed twice
    assert stale.status_code == 409 and "nothing was recorded; this is case n2" in stale.text
    assert [r[1:3] for r in rows(tmp_path / "audit.duckdb")] == [("n1", "accept")]


def test_a_code_that_is_not_billable_cannot_be_accepted(tmp_path, shared_kb):
    records = [record("h1", "M51.1", "header", 13, "M51", 0.5, "Low back pain radiating down the left leg.",
                      "Radiating leg pain suggests a lumbar disc disorder with radiculopathy.")]
    browser = Browser(open_desk(tmp_path, shared_kb, records=records))
    assert browser.soup.select_one(".status").get_text() == "header"
    assert browser.post("accept").status_code == 422
    assert "cannot accept: M51.1 is header; correct (c) or reject (r) it" in browser.text("notice")
    assert rows(tmp_path / "audit.duckdb") == []


def test_blind_mode_hides_the_model_code_until_the_reviewer_commits(tmp_path, shared_kb):
    desk = open_desk(tmp_path, shared_kb, blind=True)
    browser = Browser(desk)
    page = browser.page.text
    for hidden in ("I21.4", "NSTEMI", "myocardial", "This fits a non-ST", "R69", "0.80"):
        assert hidden not in page
    assert browser.soup.select("#note mark") == []  # no evidence highlights either: they come from the trace
    assert "crushing chest pain" in browser.text("note")
    assert browser.post("accept").status_code == 422
    assert "blind mode: enter your code first" in browser.text("notice")

    browser.post("blind", code="I21.A1")
    assert browser.text("model-code") == "I21.4"
    assert "I21.A1 ≠ model" in browser.text("prediction")
    browser.post("accept")
    assert rows(tmp_path / "audit.duckdb", "SELECT case_id, decision, blind_code FROM decisions") == [
        ("n1", "accept", "I21.A1")]
    assert rows(tmp_path / "audit.duckdb", "SELECT reviewer, case_id, code FROM blind_codes") == [
        ("alice", "n1", "I21.A1")]
    assert "Case 2/5" in browser.text("case-number")
    assert "E11.9" not in browser.page.text and "Type 2" not in browser.page.text  # case 2 starts blind again


HOSTILE = [
    "<script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 2">',
    '<a href="javascript:window.pwned = 3">click me</a>',
    "javascript:window.pwned = 4",
    "</div><iframe src=//evil.example></iframe>",
    "{{ 7 * 7 }} [bold red]markup[/]",
]


def test_hostile_note_text_is_shown_as_text_and_never_runs(tmp_path, shared_kb):
    note = "Chest pain since the morning. " + " ".join(HOSTILE) + " Troponin elevated at 2.3 ng/mL."
    trace = "Chest pain since the morning and troponin elevated at 2.3 ng/mL. <script>window.pwned = 5</script>"
    records = [record('x"><script>1</script>', "I21.4", "billable", 9, "I21", 0.8, note, trace,
                      code_raw="<b>I21.4</b>", flags=["<script>flag</script>"],
                      symptoms="<img src=x onerror=alert(1)>", guideline="<style>body{display:none}</style>")]
    browser = Browser(open_desk(tmp_path, shared_kb, records=records))
    soup = browser.soup

    scripts = soup.find_all("script")
    assert [s.get("src") for s in scripts] == ["/static/review.js"] and scripts[0].string is None
    assert soup.find_all(["img", "iframe", "style"]) == []
    assert "<b>I21.4</b>" in soup.find(id="prediction").get_text()
    for element in soup.find_all(True):
        assert not [a for a in element.attrs if a.lower().startswith("on")], element
        for attr in ("href", "src", "action"):
            assert not str(element.get(attr, "")).strip().lower().startswith("javascript:"), element
    assert [a["href"] for a in soup.find_all("a")] == ["/report"]
    shown = soup.find(id="note").get_text()
    for text in HOSTILE:
        assert text in shown  # shown exactly as written
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in browser.page.text
    assert browser.case_id() == 'x"><script>1</script>'  # the id survives the round trip as a form value
    policy = browser.page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert browser.page.headers["x-content-type-options"] == "nosniff"

    browser.post("accept")
    assert rows(tmp_path / "audit.duckdb", "SELECT case_id, decision FROM decisions") == [
        ('x"><script>1</script>', "accept")]


def test_two_reviewers_at_once_lose_no_decision(tmp_path, shared_kb):
    desk = open_desk(tmp_path, shared_kb, reviewers=("alice", "bob"))
    alice, bob = Browser(desk, "alice"), Browser(desk, "bob")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def review(browser: Browser, decide) -> None:
        try:
            start.wait()
            for _ in NOTES:
                decide(browser)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=review, args=(alice, lambda b: b.post("accept"))),
        threading.Thread(target=review, args=(bob, lambda b: b.post("reject", reason="not_supported", comment="?"))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    decided = rows(tmp_path / "audit.duckdb", "SELECT reviewer, case_id, decision FROM decisions "
                                              "ORDER BY reviewer, case_id")
    assert decided == [("alice", c[0], "accept") for c in NOTES] + [("bob", c[0], "reject") for c in NOTES]
    assert "All 5 cases decided" in alice.page.text and "5 accepted" in alice.page.text
    assert "All 5 cases decided" in bob.page.text and "5 rejected" in bob.page.text


def test_reload_and_restart_resume_at_the_next_open_case(tmp_path, shared_kb):
    desk = open_desk(tmp_path, shared_kb)
    browser = Browser(desk)
    browser.post("accept")
    browser.post("correct", code="E11.65")
    assert browser.client.get("/review").text.count("Case 3/5") == 2  # title and header, after a reload too

    restarted = ReviewDesk(AuditStore.open(tmp_path / "audit.duckdb"), shared_kb, ["alice"])  # a new server process
    old_cookie = TestClient(create_app(restarted), cookies=dict(browser.client.cookies))
    assert old_cookie.get("/review").status_code == 403  # new start, new token
    again = Browser(restarted)
    assert "Case 3/5" in again.text("case-number") and again.case_id() == "n3"
    assert "2/5 decided" in again.text("progress-text")
    again.post("back")
    assert again.case_id() == "n2" and "Revisiting: you decided correct E11.65" in again.page.text
    again.post("accept")
    assert rows(tmp_path / "audit.duckdb", "SELECT case_id, decision FROM decisions ORDER BY id") == [
        ("n1", "accept"), ("n2", "correct"), ("n2", "accept")]
    assert again.case_id() == "n3"


def test_live_code_validation_and_search(tmp_path, kb):
    browser = Browser(open_desk(tmp_path, kb))
    header = browser.client.get("/api/code", params={"q": "E11"}).json()
    assert header["status"] == "header" and header["hint"].startswith("header, not billable — e.g. ")
    assert header["suggestions"][0]["description"].startswith("Type 2 diabetes mellitus")
    billable = browser.client.get("/api/code", params={"q": "e11.65"}).json()
    assert (billable["status"], billable["code"]) == ("billable", "E11.65")
    assert billable["hint"] == "✓ Type 2 diabetes mellitus with hyperglycemia"
    words = browser.client.get("/api/code", params={"q": "nstemi"}).json()
    assert words["suggestions"][0] == {"code": "I21.4", "description": "Non-ST elevation (NSTEMI) myocardial "
                                                                       "infarction"}


def test_assets_come_from_a_fixed_list_and_nothing_is_listed(tmp_path, shared_kb):
    browser = Browser(open_desk(tmp_path, shared_kb))
    script = browser.client.get("/static/review.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "textContent" in script.text and "innerHTML" not in script.text
    for path in ("/static/", "/static/..%2fapp.py", "/static/../desk.py", "/static/templates", "/templates/review.html",
                 "/static/review.js/..", "/icdreason/audit/web/app.py"):
        response = browser.client.get(path)
        assert response.status_code == 404, path
        assert "import" not in response.text


def test_the_report_is_linked_and_served(tmp_path, shared_kb):
    browser = Browser(open_desk(tmp_path, shared_kb))
    browser.post("accept")
    assert browser.soup.find("a", string="report")["href"] == "/report"
    report = browser.client.get("/report")
    assert report.status_code == 200
    assert "<h1>icdreason audit report</h1>" in report.text and "alice" in report.text
    policy = report.headers["content-security-policy"]
    assert "script-src" not in policy and policy.startswith("default-src 'none'")


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))


def test_only_names_from_a_fixed_pattern_are_reviewers(runner, tmp_path):
    from icdreason.cli import app

    result = runner.invoke(app, ["audit", "serve", str(tmp_path / "p.jsonl"), "--reviewer", "../etc"])
    assert result.exit_code == 2
    assert re.search(r"reviewer '\.\./etc': use letters, digits", result.stderr)
