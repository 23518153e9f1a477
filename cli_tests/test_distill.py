"""`icdreason distill`: the tiny local model through the transformers engine (filtering and statistics), and a
deterministic teacher registered as an engine (the kept path, resume, the SFT layout)."""

from __future__ import annotations

import json
import re

import duckdb
import pyarrow.parquet as pq
import pytest

from icdreason.cli import app
from icdreason.distill import DistillOptions, check_trace, distill, teacher_prompt
from icdreason.engines.base import Engine, Generation
from icdreason.engines.registry import ENGINES, register

FILLER = "The admission note describes the presentation history and findings in detail for this patient today"


def valid(code: str, words: int = 40, mention: bool = False) -> str:
    lead = f"Likely {code}. " if mention else ""
    body = " ".join((FILLER.split() * 60)[:words - (2 if mention else 0)])
    return f"{lead}{body}</think><diagnosis>{code}</diagnosis>"


class FakeTeacher(Engine):
    """Answers by note id: ok-* valid, wrong-* another code, short-* 5 words, early-* names the code first,
    fmt-* no tags, flaky-* fails the first time it is asked."""

    name = "fake-teacher"
    seen: list[str] = []
    failed_once: set[str] = set()

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            type(self).seen.append(p.note_id)
            code = re.search(r"Coded principal diagnosis: (\S+) - ", p.messages[1]["content"]).group(1)
            kind = p.note_id.split("-")[0]
            if kind == "flaky" and p.note_id not in type(self).failed_once:
                type(self).failed_once.add(p.note_id)
                out.append(Generation(texts=[], error="server overloaded"))
                continue
            text = {"ok": valid(code, 40 + len(out)), "flaky": valid(code, 100), "wrong": valid("R69"),
                    "short": valid(code, 5), "early": valid(code, 50, mention=True),
                    "fmt": f"The answer is {code}"}[kind]
            out.append(Generation(texts=[text] * params.n, tokens_out=50))
        return out


@pytest.fixture
def fake_teacher():
    FakeTeacher.seen, FakeTeacher.failed_once = [], set()
    register("fake-teacher", "test_distill:FakeTeacher")
    yield
    ENGINES.pop("fake-teacher", None)


def cells(stdout: str) -> dict[str, list[str]]:
    """Table rows of a rich table as {first cell: other cells}."""
    rows = {}
    for line in stdout.splitlines():
        if line.count("│") >= 3:
            parts = [c.strip() for c in line.split("│")[1:-1]]
            rows[parts[0]] = parts[1:]
    return rows


def write_data(path, ids_codes):
    notes = {"I21.4": "Chief Complaint:\nchest pain\nHistory of Present Illness:\n67M with crushing chest pain.",
             "J18.9": "Chief Complaint:\ncough\nHistory of Present Illness:\nfever and productive cough.",
             "N17.9": "Chief Complaint:\nweakness\nHistory of Present Illness:\nrising creatinine."}
    path.write_text("".join(json.dumps({"id": i, "note": notes[c], "code": c}) + "\n" for i, c in ids_codes))
    return path


def test_teacher_prompt_gives_gold_code_description_symptoms_and_guideline(writable_kb):
    con = duckdb.connect(str(writable_kb))
    con.execute("""INSERT INTO symptoms VALUES ('I21.4', 'I214', 'gesund', 'I21.4', 'exact', 'en', 'NSTEMI',
                   'Chest pain and sweating without ST elevation.', NULL, now(), 200, 'h')""")
    con.close()
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(writable_kb) as kb:
        p = teacher_prompt({"id": "a", "note": "pain </think> here", "code": "I21.4"}, kb)
    user = p.messages[1]["content"]
    assert "Coded principal diagnosis: I21.4 - Non-ST elevation (NSTEMI) myocardial infarction" in user
    assert "Chest pain and sweating without ST elevation." in user
    assert "[/think]" in user and "</think>" not in user  # tag text in the note is neutralised
    assert "do not state the code" in p.messages[0]["content"] and p.prefill == "<think>\n"


def test_teacher_prompt_on_a_fresh_kb_gives_the_tabular_notes_not_a_placeholder(kb):
    from icdreason.kb.enrich import TABULAR_LABEL

    user = teacher_prompt({"id": "a", "note": "Polyuria, A1c 9.1%.", "code": "E11.9"}, kb).messages[1]["content"]
    assert "No symptom description available." not in user
    assert "Symptom description for this code:\nNone: the knowledge base has no symptom description for this code." \
        in user
    # the guideline slot holds the Tabular List's notes of E11.9 and E11, under a line that names them
    assert f"Coding guideline for this code's chapter:\n{TABULAR_LABEL}\nE11.9 Type 2 diabetes mellitus without " \
           "complications\n- Excludes1: type 2 diabetes mellitus, without complications in remission (E11.A)" in user
    assert "- Use additional code: code to identify control using: injectable non-insulin antidiabetic drugs" in user


def test_check_trace_filters():
    opts = DistillOptions(data="x", out="y")
    assert check_trace(valid("I21.4"), "I21.4", opts)[1] is None
    assert check_trace(valid("I21.4"), "I214", opts)[1] is None
    assert check_trace(valid("R69"), "I21.4", opts)[1] == "diagnosis is not the gold code"
    assert check_trace(valid("I21.4", 30), "I21.4", opts)[1] == "shorter than 31 words"
    assert check_trace(valid("I21.4", 884), "I21.4", opts)[1] == "longer than 883 words"
    assert check_trace(valid("I21.4", 883), "I21.4", opts)[1] is None
    assert check_trace(valid("I21.4", 60, mention=True), "I21.4", opts)[1] == "names the code before the end of the trace"
    late = " ".join(FILLER.split() * 4) + " hence I21.4</think><diagnosis>I21.4</diagnosis>"
    assert check_trace(late, "I21.4", opts)[1] is None
    assert check_trace("no tags at all I21.4", "I21.4", opts)[1] == "format invalid"
    assert check_trace("", "I21.4", opts)[1] == "empty response"


def test_distill_keeps_valid_traces_and_resumes(fake_teacher, kb, tmp_path):
    from icdreason.predict import build_engine

    data = write_data(tmp_path / "d.jsonl", [("ok-1", "I21.4"), ("ok-2", "J18.9"), ("wrong-1", "I21.4"),
                                             ("short-1", "N17.9"), ("early-1", "I21.4"), ("fmt-1", "J18.9"),
                                             ("flaky-1", "N17.9"), ("ok-3", "I21.4")])
    out = tmp_path / "sft.parquet"
    engine = build_engine("fake-teacher", "teacher-x", kb=kb)
    first = distill(DistillOptions(data=data, out=out, batch_size=3, limit=4), engine, kb)
    assert FakeTeacher.seen == ["ok-1", "ok-2", "wrong-1", "short-1"]
    assert first.stats["samples"] == 2 and first.stats["processed"] == 4
    result = distill(DistillOptions(data=data, out=out, batch_size=3), engine, kb)
    assert FakeTeacher.seen[4:] == ["early-1", "fmt-1", "flaky-1", "ok-3"]  # resumed: no note asked twice
    s = result.stats
    assert s["rejected"] == {"diagnosis is not the gold code": 1, "shorter than 31 words": 1,
                             "names the code before the end of the trace": 1, "format invalid": 1,
                             "engine error: server overloaded": 1}
    assert s["samples"] == 3 and s["unique_codes"] == 2
    # a failed engine call is retried on the next run
    again = distill(DistillOptions(data=data, out=out), engine, kb)
    assert FakeTeacher.seen[8:] == ["flaky-1"] and again.stats["samples"] == 4 and "engine error" not in str(
        again.stats["rejected"])
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["id"] for r in rows) == ["flaky-1", "ok-1", "ok-2", "ok-3"]
    assert again.stats["min_words"] == 40 and again.stats["max_words"] == 100
    assert again.stats["mean_words"] == pytest.approx(sum(r["trace_words"] for r in rows) / 4)
    row = next(r for r in rows if r["id"] == "ok-2")
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert "[ADMISSION NOTE]" in row["messages"][1]["content"] and "Coded principal" not in row["messages"][1]["content"]
    assert row["messages"][2]["content"].startswith("<think>\nThe admission note")
    assert row["messages"][2]["content"].endswith("</think>\n<diagnosis>J18.9</diagnosis>")
    assert row["teacher"] == "fake-teacher:teacher-x"
    from icdreason.training.data import check_sft_parquet

    assert check_sft_parquet(out).rows == 4


def test_cli_distill_prints_table_two(fake_teacher, kb_file, tmp_path, runner):
    data = write_data(tmp_path / "d.jsonl", [("ok-1", "I21.4"), ("ok-2", "J18.9"), ("wrong-1", "N17.9")])
    out = tmp_path / "sft.parquet"
    result = runner.invoke(app, ["distill", str(data), "--teacher", "t", "--engine", "fake-teacher", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = cells(result.stdout)
    assert table["Samples"] == ["2"] and table["Unique codes"] == ["2"]
    assert table["Min / Max trace length"] == ["40 / 41 words"] and table["Mean trace length"] == ["40.5 words"]
    assert table["diagnosis is not the gold code"] == ["1"]
    # a fresh knowledge base: said once, on stderr
    assert " ".join(result.stderr.split()).count("the knowledge base has no symptom descriptions or guidelines") == 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_model import build_tiny_model

    path = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(path)
    return path


def test_cli_distill_with_the_tiny_model(tiny_model, kb_file, tmp_path, runner):
    data = write_data(tmp_path / "d.jsonl", [("a", "I21.4"), ("b", "J18.9"), ("c", "N17.9")])
    out = tmp_path / "sft.parquet"
    args = ["distill", str(data), "--teacher", str(tiny_model), "--engine", "transformers", "--out", str(out),
            "--max-new-tokens", "24", "--n", "2", "--batch-size", "2", "-E", "device=cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    log = [json.loads(x) for x in (tmp_path / "sft.parquet.progress.jsonl").read_text().splitlines()]
    assert [r["id"] for r in log] == ["a", "b", "c"]
    # a random 40k-parameter model does not write valid traces: every note is rejected, with a reason
    assert all(not r["kept"] and r["reason"] for r in log)
    assert pq.read_table(out).num_rows == 0 and cells(result.stdout)["Samples"] == ["0"]
    assert "Notes processed: 3; kept 0" in result.stdout
    rerun = runner.invoke(app, args)
    assert rerun.exit_code == 0 and len((tmp_path / "sft.parquet.progress.jsonl").read_text().splitlines()) == 3


def test_a_dead_teacher_server_stops_distillation(kb, tmp_path):
    """Nothing listening at the teacher's URL: the run stops with ServiceUnavailable instead of logging every
    example as an engine error."""
    import socket

    from icdreason.engines.openai_engine import OpenAIEngine, OpenAIOptions
    from icdreason.errors import ServiceUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = write_data(tmp_path / "d.jsonl", [(f"ok-{i}", "I21.4") for i in range(40)])
    out = tmp_path / "sft.parquet"
    engine = OpenAIEngine("teacher", OpenAIOptions(base_url=[f"http://127.0.0.1:{port}/v1"], retries=0))
    with pytest.raises(ServiceUnavailable, match=f"http://127.0.0.1:{port}/v1 is not answering"):
        distill(DistillOptions(data=data, out=out, batch_size=8), engine, kb)
    log = tmp_path / "sft.parquet.progress.jsonl"
    assert not log.exists() or log.read_text() == ""  # no example was given up as an engine error
