"""Benchmark: `icdreason audit` on a large audit — sampling, committing decisions, the report, the HTML file.

    python bench/audit.py [--records 20000] [--sample 2000] [--reviewers 3] [--kb PATH]

Generates a predictions file of ``--records`` records (random billable codes, notes of ~12 sentences, traces that
quote three of them, self-consistency top-k), starts an audit on a ``--sample`` drawn per chapter, commits one
decision per case per reviewer one by one as a session does (a connection per decision), renders the first case
screen as the terminal would, then builds the report (kappas at four levels), its Markdown and its HTML with plots.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def make_records(codes: list[str], n: int, rng: random.Random) -> list[dict]:
    words = ("pain fever cough dyspnea nausea edema rash syncope fatigue chest abdominal lower right left acute "
             "chronic elevated troponin glucose creatinine lactate sputum wheeze murmur tenderness").split()
    out = []
    for i in range(n):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))).capitalize() + "."
                     for _ in range(12)]
        code = rng.choice(codes)
        support = round(rng.uniform(0.2, 1.0), 2)
        out.append({
            "id": f"case{i:06d}", "run_id": "bench", "engine": "transformers", "model": "bench", "uses_llm": True,
            "note": " ".join(sentences),
            "trace": " ".join(rng.sample(sentences, 3)) + " Therefore the diagnosis follows.", "code": code,
            "code_raw": code, "status": "billable", "description": None, "chapter": None, "category": code[:3],
            "confidence": {"code": support, "category": support, "chapter": 1.0},
            "top_k": [{"code": code, "support": support}, {"code": rng.choice(codes), "support": round(1 - support, 2)}],
        })
    return out


def web_rows(store, kb) -> list[tuple[str, float, str]]:
    """`audit serve` over HTTP (Starlette's TestClient, in process): a review page, and a decision with the redirect
    to the next page, for a reviewer with no decision yet."""
    from bs4 import BeautifulSoup
    from starlette.testclient import TestClient

    from icdreason.audit.web import ReviewDesk, create_app

    t = time.perf_counter()
    desk = ReviewDesk(store, kb, ["web"])
    opened = time.perf_counter() - t
    client = TestClient(create_app(desk))
    client.get(f"/?token={desk.reviewers['web'].token}")
    client.get("/review")  # warm: templates compiled, assets read
    t = time.perf_counter()
    for _ in range(20):
        page = client.get("/review")
    get = (time.perf_counter() - t) / 20
    t = time.perf_counter()
    for _ in range(20):
        case_id = BeautifulSoup(page.text, "html.parser").find("input", attrs={"name": "case_id"})["value"]
        page = client.post("/review", data={"csrf": desk.reviewers["web"].csrf, "case_id": case_id,
                                            "action": "accept"})
    post = (time.perf_counter() - t) / 20
    return [("web: open the desk (one reviewer's session)", opened, ""),
            ("web: GET /review (one case page)", get, f"{len(page.text) / 1e3:.0f} kB of HTML"),
            ("web: POST a decision + the next page", post, "commit, 303, render")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--reviewers", type=int, default=3)
    parser.add_argument("--kb", type=Path, default=None)
    args = parser.parse_args()

    from icdreason.audit import AuditStore, Decision, ReviewSession, build_report, start_audit
    from icdreason.audit.html import html_report
    from icdreason.audit.render import markdown
    from icdreason.audit.screen import case_body, render_lines
    from icdreason.kb import KnowledgeBase

    rng = random.Random(0)
    rows: list[tuple[str, float, str]] = []
    with KnowledgeBase.open(args.kb) as kb, tempfile.TemporaryDirectory() as tmp:
        codes = kb.billable_codes()
        preds = Path(tmp) / "preds.jsonl"
        preds.write_text("".join(json.dumps(r) + "\n" for r in make_records(codes, args.records, rng)))
        store = AuditStore.open(Path(tmp) / "audit.duckdb")

        t = time.perf_counter()
        info, _ = start_audit(store, preds, kb, sample_size=args.sample, strategy="per-chapter", seed=0)
        rows.append(("start audit (read, hash, sample per chapter, store)", time.perf_counter() - t,
                     f"{args.records:,} records -> {args.sample:,} cases"))

        cases = store.cases()
        names = [f"rev{i}" for i in range(args.reviewers)]
        t = time.perf_counter()
        n = 0
        for name in names:
            store.add_reviewer(name)
            for case in cases[:200]:  # one commit per decision, as a session does
                kind = rng.choice(["accept", "accept", "accept", "correct", "reject"])
                store.record(Decision(name, case.case_id, kind,
                                      expert_code=rng.choice(codes) if kind == "correct" else None,
                                      reason="missed_severity" if kind == "reject" else None,
                                      seconds=rng.uniform(20, 120), predictions_sha256=info.predictions_sha256))
                n += 1
        elapsed = time.perf_counter() - t
        rows.append(("commit one decision (own connection)", elapsed / n, f"{n:,} commits, {1000 * elapsed / n:.1f} ms"))
        bulk = [Decision(name, case.case_id, rng.choice(["accept", "correct", "reject"]),
                         expert_code=rng.choice(codes), reason="other", comment="bench", seconds=30.0,
                         predictions_sha256=info.predictions_sha256)
                for name in names for case in cases[200:]]
        for d in bulk:
            if d.decision == "accept":
                d.expert_code = None
        t = time.perf_counter()
        store.record(bulk)
        rows.append(("bulk write (an import)", time.perf_counter() - t, f"{len(bulk):,} decisions"))

        t = time.perf_counter()
        session = ReviewSession(store, "fresh", kb)
        rows.append(("open a session (load cases + own decisions)", time.perf_counter() - t, ""))
        console = Console(file=io.StringIO(), width=120, height=50, color_system="truecolor")
        t = time.perf_counter()
        for _ in range(20):
            render_lines(console, case_body(session.view(), "fresh", blind=False, plain=False))
        rows.append(("render one case screen (evidence, path, enrichment)", (time.perf_counter() - t) / 20, ""))

        rows += web_rows(store, kb)

        t = time.perf_counter()
        report = build_report(store)
        rows.append(("build report (all sections, kappas at 4 levels)", time.perf_counter() - t,
                     f"{report.decided:,} decisions, {len(report.flagged):,} flagged"))
        t = time.perf_counter()
        md = markdown(report)
        rows.append(("Markdown", time.perf_counter() - t, f"{len(md) / 1e6:.1f} MB"))
        t = time.perf_counter()
        page = html_report(report)
        rows.append(("HTML with 4 plots", time.perf_counter() - t, f"{len(page) / 1e6:.1f} MB"))

    table = Table(title=f"icdreason audit: {args.records:,} records, {args.sample:,} cases, {args.reviewers} reviewers")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("notes")
    for step, secs, note in rows:
        table.add_row(step, f"{secs:.3f}", note)
    Console().print(table)


if __name__ == "__main__":
    main()
