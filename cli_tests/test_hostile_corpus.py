"""The hostile corpus (cli_tests/hostile_corpus.py) through every command that reads user data: no traceback, an exit
code of 0, 1 or 2, one ``error:`` line where a command refuses, and no raw escape sequence on the screen.

Every command runs once, in order (predict writes the predictions that eval, reward and audit then read), in a
module fixture; each case below checks one run. A case that depends on another helper's part of issue 14 carries
``xfail(strict=True)`` naming the item, so the marker fails loudly once that part is merged and can be dropped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_corpus import CHEST, ESC, HUGE_ID, MARKUP, write_corpus

from icdreason.cli import app


def _cases(c: dict[str, Path], out: Path) -> list[tuple[str, list[str], str | Path | None]]:
    """(name, arguments, stdin: text, or a file whose bytes are piped) of every run, in order."""
    cases: list[tuple[str, list[str], str | Path | None]] = []
    for fmt in ("jsonl", "csv", "parquet", "txt"):  # every input format, to JSONL plus the DuckDB log
        cases.append((f"predict {fmt} -> jsonl+db", ["predict", str(c[fmt]), "--out", str(out / f"{fmt}.jsonl"),
                                                      "--db", str(out / "runs.duckdb"), "--keep-raw"], None))
    for kind in ("csv", "parquet"):  # every output format
        cases.append((f"predict jsonl -> {kind}", ["predict", str(c["jsonl"]), "--out", str(out / f"preds.{kind}")],
                      None))
    cases += [
        ("predict jsonl -> table", ["predict", str(c["jsonl"])], None),
        ("predict jsonl -> stdout", ["predict", str(c["jsonl"]), "--out", "-", "-q"], None),
        ("predict jsonl --resume", ["predict", str(c["jsonl"]), "--out", str(out / "jsonl.jsonl"), "--resume"], None),
        ("predict csv --resume (csv out)", ["predict", str(c["jsonl"]), "--out", str(out / "preds.csv"), "--resume"],
         None),
        ("predict stdin text", ["predict", "-"], f"{ESC}{MARKUP} {CHEST}\x00"),
        ("predict stdin jsonl", ["predict", "-", "--text-column", "text"], c["jsonl"]),
        ("predict --show-prompt", ["predict", str(c["jsonl"]), "--show-prompt"], None),
        ("predict latin-1 csv", ["predict", str(c["latin1_csv"]), "--out", str(out / "latin.jsonl")], None),
        ("validate args", ["validate", "--", MARKUP, ESC, "=1+1", "-A00", HUGE_ID, "sur\udc80", "I21.4"], None),
        ("validate args jsonl", ["validate", "--format", "jsonl", "--", MARKUP, ESC, "sur\udc80"], None),
        ("validate args csv", ["validate", "--format", "csv", "--", MARKUP, ESC, "=1+1", "sur\udc80"], None),
        ("validate codes file", ["validate", "--file", str(c["codes"])], None),
        ("validate latin-1 codes file", ["validate", "--file", str(c["latin1_codes"])], None),
        ("validate csv column", ["validate", "--file", str(c["csv"]), "--column", "id"], None),
        ("validate parquet column", ["validate", "--file", str(c["parquet"]), "--column", "id"], None),
        ("kb lookup hostile", ["kb", "lookup", "--", MARKUP, ESC, "sur\udc80", HUGE_ID, "I21.4"], None),
        ("kb lookup --json", ["kb", "lookup", "--json", "--", MARKUP, ESC, "sur\udc80"], None),
        ("kb search markup", ["kb", "search", f"{MARKUP} chest pain [/bold]"], None),
        ("kb search escapes", ["kb", "search", f"{ESC} troponin"], None),
        ("kb search surrogate", ["kb", "search", "chest \udc80 pain"], None),
        ("kb search punctuation", ["kb", "search", "[/]"], None),
        ("kb search huge", ["kb", "search", CHEST * 2000], None),
    ]
    for name in ("jsonl.jsonl", "preds.csv", "preds.parquet", "runs.duckdb"):
        cases.append((f"eval {name}", ["eval", str(out / name), "--gold", str(c["gold"]), "--by", "status"], None))
    cases += [
        ("eval corpus jsonl", ["eval", str(c["jsonl"]), "--gold", str(c["gold"]), "--by", "text"], None),
        ("eval corpus csv", ["eval", str(c["csv"]), "--gold", str(c["gold"])], None),
        ("eval corpus parquet", ["eval", str(c["parquet"]), "--gold", str(c["gold"])], None),
        ("eval latin-1 csv", ["eval", str(c["latin1_csv"]), "--gold", str(c["gold"])], None),
        ("eval --out -", ["eval", str(out / "jsonl.jsonl"), "--gold", str(c["gold"]), "--out", "-"], None),
        ("reward score responses", ["reward", "score", str(c["responses"]), "--components", "format,outcome,length"],
         None),
        ("reward score predictions", ["reward", "score", str(out / "jsonl.jsonl"), "--gold", str(c["gold"])], None),
        ("reward score corpus", ["reward", "score", str(c["jsonl"]), "--gold", str(c["gold"])], None),
        ("audit start jsonl", ["audit", "start", str(out / "jsonl.jsonl"), "--reviewer", "alice", "--db",
                               str(out / "audit.duckdb")], "a\nc\n[/]\nI21.4\nr\n7\n[bold] =1+1\nf\ns\nq\n"),
        ("audit start csv", ["audit", "start", str(out / "preds.csv"), "--reviewer", "bob", "--db",
                             str(out / "audit-csv.duckdb")], "a\na\na\nq\n"),
        ("audit start parquet", ["audit", "start", str(out / "preds.parquet"), "--reviewer", "bob", "--db",
                                 str(out / "audit-parquet.duckdb")], "q\n"),
        ("audit start corpus", ["audit", "start", str(c["jsonl"]), "--reviewer", "bob", "--db",
                                str(out / "audit-corpus.duckdb")], "q\n"),
        ("audit import", ["audit", "import", str(c["sheet"]), "--db", str(out / "audit.duckdb"), "--rejected-out",
                          str(out / "rejected.csv")], None),
        ("audit report", ["audit", "report", "--db", str(out / "audit.duckdb"), "--md", str(out / "report.md"),
                          "--html", str(out / "report.html"), "--no-plots"], None),
        ("distill corpus", ["distill", str(c["jsonl"]), "--teacher", "retriever", "--engine", "retriever",
                            "--out", str(out / "sft.parquet")], None),
        ("distill predictions", ["distill", str(out / "jsonl.jsonl"), "--teacher", "retriever", "--engine",
                                 "retriever", "--out", str(out / "sft2.parquet"), "--min-words", "1"], None),
        ("data prepare", ["data", "prepare", "--notes", str(c["mimic_notes"]), "--diagnoses", str(c["mimic_dx"]),
                          "--out", str(out / "prepared")], None),
    ]
    return cases


#: Cases that depend on another helper's part of issue 14: drop the marker once that part is merged.
PIPELINE = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, retriever_kb):
    """Every case run once, in order: name -> (CliRunner result, arguments)."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("hostile")
    corpus = write_corpus(root / "corpus")
    out = root / "out"
    out.mkdir()
    env = {"ICDREASON_HOME": str(root / "home"), "ICDREASON_KB": str(retriever_kb), "ICDREASON_DEBUG": None,
           "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb"}
    runner = CliRunner()
    results = {}
    for name, args, stdin in _cases(corpus, out):
        data = stdin.read_bytes() if isinstance(stdin, Path) else stdin
        results[name] = (runner.invoke(app, args, input=data, env=env), args)
    return results


def _names() -> list:
    dummy = {k: Path(k) for k in ("jsonl", "csv", "parquet", "txt", "latin1_csv", "codes", "latin1_codes", "gold",
                                  "responses", "sheet", "mimic_notes", "mimic_dx")}
    names = [name for name, _, _ in _cases(dummy, Path("out"))]
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=PIPELINE[n])) if n in PIPELINE else n
            for n in names]


@pytest.mark.parametrize("name", _names())
def test_hostile_corpus(runs, name):
    result, args = runs[name]
    shown = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{name}: {type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in shown
    assert result.exit_code in (0, 1, 2), (name, result.exit_code, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, result.stderr
    if result.exit_code == 2:
        assert len(errors) == 1, (name, result.stderr[-2000:])
    assert "\x1b" not in shown and "\x9b" not in shown, name  # escape sequences from data never reach the terminal
