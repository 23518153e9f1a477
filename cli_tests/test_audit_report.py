"""`icdreason audit report`: figures checked by hand and against scikit-learn; Markdown; a safe, self-contained HTML."""

from __future__ import annotations

import math
import sys

import pytest
from audit_fixtures import NOTES, record, write_predictions
from bs4 import BeautifulSoup
from sklearn.metrics import cohen_kappa_score

from icdreason import DISCLAIMER
from icdreason.audit import AuditStore, Decision, build_report, start_audit
from icdreason.cli import app

SCRIPT = '<script>alert("pwned")</script>'

# alice and bob on the five fixture cases (model: I21.4, E11.9, J18.9, K35.80, N39.0)
ALICE = [("n1", "accept", None, None, "I21.4"), ("n2", "correct", "E11.65", None, "E11.65"),
         ("n3", "accept", None, None, "J18.9"), ("n4", "reject", "K35.209", "premature_closure", "K35.209"),
         ("n5", "accept", None, None, "N39.0")]
BOB = [("n1", "accept", None, None, None), ("n2", "accept", None, None, None),
       ("n3", "correct", "J15.9", None, None), ("n4", "reject", None, "missed_severity", None),
       ("n5", "correct", "N30.00", None, None)]


@pytest.fixture
def audit_db(tmp_path, built_kb):
    from icdreason.kb import KnowledgeBase

    recs = [record(*n) for n in NOTES]
    recs[3]["note"] = f"Right lower quadrant pain. {SCRIPT} Rebound tenderness at McBurney point."
    recs[3]["trace"] = f"Rebound tenderness at McBurney point. {SCRIPT}"
    preds = write_predictions(tmp_path / "pred.jsonl", recs)
    store = AuditStore.open(tmp_path / "audit.duckdb")
    with KnowledgeBase.open(built_kb) as kb:
        info, _ = start_audit(store, preds, kb)
    for name, rows, secs in (("alice", ALICE, 30.0), ("bob", BOB, 60.0)):
        store.add_reviewer(name)
        store.record([Decision(name, case, decision, expert_code=code, reason=reason, blind_code=blind,
                               seconds=secs + i, flagged=(name == "bob" and case == "n1"),
                               comment="see " + SCRIPT if reason == "premature_closure" else None,
                               predictions_sha256=info.predictions_sha256)
                      for i, (case, decision, code, reason, blind) in enumerate(rows)])
    return store


def _section(report, title):
    return next(s for s in report.sections if s.title.startswith(title))


def test_figures_by_hand_and_against_sklearn(audit_db):
    report = build_report(audit_db)
    assert report.decided == 10 and report.acceptance_rate == 0.5
    kappa = {(a.level): a for a in report.agreements}
    # decision: p_o = 2/5, p_e = (3*2 + 1*2 + 1*1)/25 = 0.36 -> (0.4 - 0.36) / 0.64 = 0.0625
    assert kappa["decision"].kappa == pytest.approx(0.0625)
    # codes (n4 left out: bob gave no code): chapters all equal -> 1; categories 2/4 agree, p_e 2/16 -> 3/7
    assert kappa["chapter"].items == 4 and kappa["chapter"].kappa == pytest.approx(1.0)
    assert kappa["category"].kappa == pytest.approx(3 / 7)
    assert kappa["code"].kappa == pytest.approx((0.25 - 1 / 16) / (1 - 1 / 16))  # 0.2
    assert kappa["code"].kappa == pytest.approx(cohen_kappa_score(["I214", "E1165", "J189", "N390"],
                                                                  ["I214", "E119", "J159", "N3000"]))
    assert kappa["decision"].kappa == pytest.approx(cohen_kappa_score([r[1] for r in ALICE], [r[1] for r in BOB]))
    blind = {a.level: a for name, a in report.model_vs_experts if name == "alice"}
    # model I21.4 E11.9 J18.9 K35.80 N39.0 vs alice's blind codes: 3/5 codes agree, p_e = 3/25
    assert blind["code"].observed == pytest.approx(0.6)
    assert blind["code"].kappa == pytest.approx((0.6 - 0.12) / 0.88)
    assert blind["category"].kappa == pytest.approx(1.0)
    divergence = {row[0]: int(row[1]) for row in _section(report, "Where corrections").rows}
    assert divergence == {"chapter": 0, "category": 2, "code": 1}  # J18->J15, N39->N30; E11.9->E11.65
    chapters = {row[0]: row for row in _section(report, "Per chapter").rows}
    assert chapters["14 (N00-N99)"][3:] == ["2", "50.0%", "50.0%", "0.0%"]
    reasons = {row[0]: row[1] for row in _section(report, "Rejection reasons").rows}
    assert reasons == {"premature closure": "1", "missed severity": "1"}
    times = {row[0]: row for row in _section(report, "Time per case").rows}
    assert times["alice"][2] == "32.0" and times["bob"][3] == "62.0"
    flagged = {f.case.case_id: f.why for f in report.flagged}
    assert set(flagged) == {"n1", "n2", "n3", "n4", "n5"}
    assert flagged["n1"] == ["flagged by bob"]
    assert flagged["n4"][0] == "rejected (premature closure, missed severity)"


def test_three_reviewers_use_fleiss(audit_db):
    audit_db.add_reviewer("carol")
    audit_db.record([Decision("carol", c, "accept", predictions_sha256="x") for c in ("n1", "n2", "n3", "n5")])
    report = build_report(audit_db)
    overall = [a for a in report.agreements if len(a.raters) == 3]
    assert {a.method for a in overall} == {"fleiss"}
    decision = next(a for a in overall if a.level == "decision")
    assert decision.items == 4 and not math.isnan(decision.kappa)
    assert any(a.raters == ("alice", "bob") and a.method == "cohen" for a in report.agreements)


def test_cli_report_markdown_and_safe_html(audit_db, runner, tmp_path):
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    result = runner.invoke(app, ["audit", "report", "--db", str(audit_db.path), "--md", str(md), "--html", str(html)])
    assert result.exit_code == 0, result.stderr
    assert "acceptance rate" in result.stdout and "50.0%" in result.stdout
    assert DISCLAIMER in result.stdout
    text = md.read_text()
    assert text.startswith("# icdreason audit report\n\n> **" + DISCLAIMER)
    assert "| alice + bob | code | 4 | 25.0% | 0.200 | Cohen |" in text
    assert "| alice + bob | decision | 5 | 40.0% | 0.063 | Cohen |" in text
    page = html.read_text()
    soup = BeautifulSoup(page, "lxml")
    assert soup.find("p", class_="disclaimer").get_text() == DISCLAIMER  # first thing in the body
    assert soup.body.find(True) is soup.find("p", class_="disclaimer")
    assert soup.find_all("script") == []  # the note's <script> is text, not an element
    assert SCRIPT in soup.get_text()  # ... and it is visible as written
    assert "&lt;script&gt;alert" in page and SCRIPT not in page
    assert soup.find("mark") is not None  # evidence highlighted in the flagged notes
    images = soup.find_all("img")
    assert images and all(img["src"].startswith("data:image/png;base64,") for img in images)
    assert not soup.find_all("link") and all(tag.get("src", "").startswith("data:") for tag in soup.find_all(src=True))


def test_html_report_on_the_core_install_has_no_plots_and_says_why(audit_db, runner, tmp_path, monkeypatch):
    # The core install has no matplotlib (the plot extra): the report is written anyway, with one line saying why the
    # plots are missing and how to get them.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    html = tmp_path / "core.html"
    result = runner.invoke(app, ["audit", "report", "--db", str(audit_db.path), "--html", str(html)])
    assert result.exit_code == 0, result.stderr
    note = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert note == ["note: plots left out: matplotlib is not installed (pip install '.[plot]' in the icdreason "
                    "checkout)"]
    soup = BeautifulSoup(html.read_text(), "lxml")
    assert soup.find_all("img") == [] and "matplotlib is not installed" in soup.get_text()
    assert "Per chapter" in soup.get_text() and "14 (N00-N99)" in soup.get_text()


def test_report_without_audit_is_a_clear_message(runner, tmp_path):
    result = runner.invoke(app, ["audit", "report", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1
    assert "no audit database at" in result.stderr and "icdreason audit start" in result.stderr


def test_blind_codes_without_a_decision_count_for_model_vs_experts(audit_db):
    audit_db.save_blind_code("bob", "n1", "I21.9", 12.0)  # entered blind, then the session was quit
    report = build_report(audit_db)
    rows = {(name, a.level): a for name, a in report.model_vs_experts}
    assert rows[("bob", "code")].items == 1 and rows[("bob", "code")].observed == 0.0
    assert rows[("bob", "category")].observed == 1.0
    pooled = rows[("all reviewers (pooled)", "code")]
    assert pooled.items == 6 and pooled.observed == pytest.approx(3 / 6)
