"""The LLM judge against a local OpenAI-compatible server started by the test (well-behaved, erroring, slow)."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from icdreason.rewards.judge import CHOICES, JudgeClient, JudgeItem, parse_judge_answer
from icdreason.rewards import RewardConfig, score_batch


@pytest.fixture
def kb_file(writable_kb):
    """These tests write to the knowledge base (scraped or imported rows): each gets a private copy."""
    return writable_kb


TRACE = "Crushing chest pain for two hours, troponin rising, ST depression in V4-V6: a non-ST elevation infarction."
NOTE = "Chief Complaint: chest pain. HPI: 67-year-old man with crushing substernal chest pain since this morning."


class FakeJudge(BaseHTTPRequestHandler):
    """``/<mode>/v1/chat/completions``; modes: ok, garbage, fenced, slow, error, strict (rejects vLLM extras)."""

    requests: list[dict] = []
    headers_seen: list[dict] = []
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.path.split("/")[1]
        cls = type(self)
        with cls.lock:
            cls.requests.append({"mode": mode, **body})
            cls.headers_seen.append(dict(self.headers))
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            time.sleep(0.05)
            if mode == "slow":
                time.sleep(2.0)
            if mode == "error":
                return self._send(500, {"error": "boom"})
            if mode == "strict" and ("structured_outputs" in body or "guided_choice" in body):
                return self._send(400, {"error": {"message": "Unrecognized request argument: structured_outputs"}})
            answer = {"garbage": "I would rate this a 4.", "fenced": '```json\n{"score": 4}\n```'}.get(
                mode, json.dumps({"score": 4 if "troponin" in body["messages"][1]["content"] else 2}))
            self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                          "finish_reason": "stop"}]})
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients that time out close the socket early
        pass


@pytest.fixture
def server():
    FakeJudge.requests, FakeJudge.headers_seen = [], []
    FakeJudge.in_flight = FakeJudge.max_in_flight = 0
    httpd = QuietServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def enriched_kb(kb_file):
    """The KB copy with a symptom description for I21.4 and a chapter-9 guideline section."""
    con = duckdb.connect(str(kb_file))
    con.execute("""INSERT INTO symptoms VALUES ('I21.4', 'I214', 'gesund', 'I21.4', 'exact', 'en', 'NSTEMI',
                   'Heart attack without ST elevation: chest pain, shortness of breath, sweating.', NULL,
                   now(), 200, 'h')""")
    con.execute("""INSERT INTO guidelines (id, parent, level, seq, section, chapter, title, text, page_start, page_end,
                                          source, imported_at, path)
                   VALUES ('I.C.9', 'I.C', 2, 1, 'I', 9, 'Chapter 9: Diseases of the Circulatory System',
                   'Code acute myocardial infarction by site.', 1, 2, 'test', now(),
                   ['Chapter 9: Diseases of the Circulatory System'])""")
    con.close()
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(kb_file) as base:
        yield base


def item(code="I21.4", trace=TRACE, note=NOTE):
    return JudgeItem(note=note, trace=trace, code=code)


def test_prompt_carries_note_predicted_code_symptoms_and_guideline(server, enriched_kb, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-secret-123")
    with JudgeClient(f"{server}/ok/v1", "judge-model", api_key_env="TEST_JUDGE_KEY", kb=enriched_kb,
                     cache=tmp_path / "c.sqlite") as judge:
        assert judge.score(item()) == 4.0
    sent = FakeJudge.requests[0]
    user = sent["messages"][1]["content"]
    assert NOTE in user and TRACE in user
    assert "I21.4 - Non-ST elevation (NSTEMI) myocardial infarction" in user
    assert "chest pain, shortness of breath, sweating" in user  # symptoms of the PREDICTED code
    # its chapter's guideline, under the heading path it comes from
    assert "Chapter 9: Diseases of the Circulatory System\nCode acute myocardial infarction by site." in user
    assert sent["structured_outputs"] == {"choice": CHOICES} and sent["model"] == "judge-model"
    assert FakeJudge.headers_seen[0]["Authorization"] == "Bearer sk-secret-123"


def test_a_fresh_kb_gives_the_judge_tabular_notes_and_one_warning(server, kb, caplog):
    with JudgeClient(f"{server}/ok/v1", "m", kb=kb, cache="off") as judge:
        with caplog.at_level("WARNING", logger="icdreason"):
            user = judge.messages(item())[1]["content"]
            judge.messages(item(code="E11.9"))
        assert judge.stats.warnings and sum(judge.stats.warnings.values()) == 1
    assert "No symptom description available." not in user and "No guideline available." not in user
    assert "Acute subendocardial myocardial infarction; Non-Q wave myocardial infarction NOS" in user
    assert "ICD-10-CM Tabular List notes" in user
    assert sum("icdreason scrape symptoms" in r.getMessage() for r in caplog.records) == 1


def test_cache_keyed_by_note_trace_and_code(server, enriched_kb, tmp_path):
    cache = tmp_path / "judge.sqlite"
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache=cache) as judge:
        assert judge.score_many([item(), item(), item(code="I21.9")]) == [4.0, 4.0, 4.0]
        assert len(FakeJudge.requests) == 2  # duplicates share one request
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache=cache) as judge:
        assert judge.score_many([item(), item(trace="Other reasoning.")]) == [4.0, 2.0]
        assert judge.stats.cache_hits == 1 and len(FakeJudge.requests) == 3


def test_bounded_concurrency(server, enriched_kb):
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache="off", concurrency=3) as judge:
        scores = judge.score_many([item(trace=f"{TRACE} #{i}") for i in range(12)])
    assert scores == [4.0] * 12
    assert 1 < FakeJudge.max_in_flight <= 3


@pytest.mark.parametrize("mode,reason", [("garbage", 'answer is not {"score": 1-5}'),
                                         ("fenced", 'answer is not {"score": 1-5}'),
                                         ("error", "HTTP 500")])
def test_bad_answers_and_errors_give_none_and_a_counted_warning(server, enriched_kb, mode, reason):
    with JudgeClient(f"{server}/{mode}/v1", "m", kb=enriched_kb, cache="off", retries=1) as judge:
        assert judge.score_many([item(), item(code="I10")]) == [None, None]
        assert judge.stats.failures[reason] == 2
    if mode == "error":
        assert len(FakeJudge.requests) == 4  # one retry each


def test_timeout_gives_none(server, enriched_kb):
    with JudgeClient(f"{server}/slow/v1", "m", kb=enriched_kb, cache="off", timeout=0.5) as judge:
        judge.messages(item())  # the first knowledge-base lookup loads the code table: not part of the request
        start = time.monotonic()
        assert judge.score(item()) is None
        assert time.monotonic() - start < 2.0
        assert judge.stats.failures["timeout"] == 1


def test_unreachable_server(enriched_kb):
    with JudgeClient("http://127.0.0.1:9/v1", "m", kb=enriched_kb, cache="off", retries=0, timeout=2) as judge:
        assert judge.score(item()) is None
        assert judge.stats.failures["connection error"] == 1


def test_server_without_constrained_decoding_is_asked_again_without(server, enriched_kb):
    with JudgeClient(f"{server}/strict/v1", "m", kb=enriched_kb, cache="off") as judge:
        assert judge.score_many([item(), item(trace="Hypertension.")]) == [4.0, 2.0]
        assert judge.guided == "none" and judge.stats.failed == 0
    assert "structured_outputs" in FakeJudge.requests[0] and "structured_outputs" not in FakeJudge.requests[-1]


def test_guided_choice_and_json_schema_bodies(server, enriched_kb):
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache="off", guided="guided_choice") as judge:
        judge.score(item())
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache="off", guided="json_schema") as judge:
        judge.score(item())
    assert FakeJudge.requests[0]["guided_choice"] == CHOICES
    assert FakeJudge.requests[1]["response_format"]["json_schema"]["schema"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]


def test_strict_parsing():
    assert parse_judge_answer('{"score": 5}') == 5
    assert parse_judge_answer(' {"score":1}\n') == 1
    for bad in ['{"score": 6}', '{"score": "4"}', '{"score": 4.5}', '{"score": true}', "4", '{"score": 4, "why": "x"}',
                '[4]', "", None]:
        assert parse_judge_answer(bad) is None, bad


def test_judge_component_in_the_reward_with_neutral_fallback(server, kb_file, monkeypatch, tmp_path):
    responses = [f"{TRACE}</think><diagnosis>I21.4</diagnosis>", "no reasoning</think><diagnosis>bad</diagnosis>"]
    ok = RewardConfig(preset="icdreason", components=("outcome", "judge"), judge_url=f"{server}/ok/v1", judge_model="m",
                      judge_cache=str(tmp_path / "c.sqlite"))
    results = score_batch(responses, ["I214", "I214"], config=ok, notes=[NOTE, NOTE])
    assert results[0].components["judge"] == pytest.approx(0.05 * 4) and results[0].judge_score == 4.0
    assert results[1].components["judge"] == 0.0  # nothing valid to judge
    failing = RewardConfig(preset="icdreason", components=("outcome", "judge"), judge_url=f"{server}/error/v1", judge_model="m",
                           judge_cache="off")
    r = score_batch(responses[:1], ["I214"], config=failing, notes=[NOTE])[0]
    assert r.components["judge"] == pytest.approx(0.05 * 3) and r.judge_score is None
    assert r.score == pytest.approx(60.0 + 0.15)


def test_one_client_used_from_several_threads(server, enriched_kb, tmp_path):
    # verl's naive reward manager runs compute_score in executor threads that share the process's judge client
    from concurrent.futures import ThreadPoolExecutor

    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache=tmp_path / "c.sqlite", concurrency=4) as judge:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: judge.score(item(trace=f"{TRACE} {i % 5}")), range(40)))
        assert results == [4.0] * 40 and judge.stats.failed == 0
        assert judge.stats.cache_hits + len(FakeJudge.requests) >= 40


# --------------------------------------------------------------------------------------------------------------
# prompt files in the DeepICD-R1 authors' JSON shape, and the judge term of the deepicd-r1 preset

# A prompt written for this test in the authors' shape: {"SYSTEM": ..., "USER": ...} with $$...$$ placeholders.
PROMPT_FILE = {
    "SYSTEM": "You grade clinical reasoning. Reply with JSON only.",
    "USER": "NOTE:\n$$ADMISSION_NOTE$$\n---\nCODE: $$ICD$$\nREASONING:\n$$TRACE$$\n---\nSYMPTOMS: $$SYMPTOMS$$\n"
            "GUIDELINE: $$ICD_CHAPTER$$\n---\nScore 1-5 as {{\"score\": n}}.",
}


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "judge_prompt.json"
    path.write_text(json.dumps(PROMPT_FILE))
    return path


def test_prompt_file_in_the_authors_shape_is_filled_as_written(server, enriched_kb, prompt_file):
    note = NOTE + " Patient typed $$TRACE$$ in the portal."  # data that looks like a placeholder stays as written
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache="off", prompt=prompt_file) as judge:
        assert judge.score(JudgeItem(note=note, trace=f"  {TRACE}\n", code="I214")) == 4.0
    system, user = (m["content"] for m in FakeJudge.requests[0]["messages"])
    assert system == PROMPT_FILE["SYSTEM"]
    assert user.startswith(f"NOTE:\n{note}\n---\nCODE: I214\nREASONING:\n{TRACE}\n---\n")
    assert "SYMPTOMS: Heart attack without ST elevation" in user
    assert "GUIDELINE: Chapter 9: Diseases of the Circulatory System" in user
    assert user.endswith('Score 1-5 as {{"score": n}}.')  # the doubled braces reach the judge as written


def test_prompt_file_without_rag_leaves_symptoms_and_guideline_empty(server, enriched_kb, prompt_file):
    with JudgeClient(f"{server}/ok/v1", "m", kb=enriched_kb, cache="off", prompt=prompt_file, rag=False) as judge:
        judge.score(item())
    user = FakeJudge.requests[0]["messages"][1]["content"]
    assert "SYMPTOMS: \nGUIDELINE: \n" in user


@pytest.mark.parametrize("content,message", [
    ('{"SYSTEM": "s"}', "expected an object with string keys SYSTEM and USER (found: SYSTEM)"),
    ("[1, 2]", "expected an object with string keys SYSTEM and USER (found: list)"),
    ("{SYSTEM: s}", "not valid JSON"),
    ('{"SYSTEM": "s", "USER": "rate it"}', "neither $$TRACE$$ nor $$ADMISSION_NOTE$$"),
])
def test_broken_prompt_files_name_the_problem(tmp_path, content, message):
    from icdreason.errors import InputError
    from icdreason.rewards.judge_prompt import load_judge_prompt

    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(InputError, match=re.escape(message)):
        load_judge_prompt(path)


def test_deepicd_r1_judge_term(server, kb_file, prompt_file, tmp_path):
    """0.8 x the judge's score; -0.8 when the judge is not asked (dotted code, blank trace); 0 when it fails."""
    good = f"{TRACE}</think>\n<diagnosis>I214</diagnosis>"
    dotted = f"{TRACE}</think>\n<diagnosis>I21.4</diagnosis>"
    blank = " </think>\n<diagnosis>I214</diagnosis>"
    cfg = RewardConfig(judge_url=f"{server}/ok/v1", judge_prompt=str(prompt_file), judge_cache="off")
    assert cfg.preset == "deepicd-r1" and cfg.components == ("format", "outcome", "trace", "judge")
    results = score_batch([good, dotted, blank], ["I214"] * 3, config=cfg, notes=[NOTE] * 3)
    assert [r.components["judge"] for r in results] == [pytest.approx(0.8 * 4), -0.8, -0.8]
    assert [r.score for r in results] == [pytest.approx(61 + 3.2), pytest.approx(61 - 0.8), pytest.approx(61 - 0.8)]
    assert len(FakeJudge.requests) == 1 and FakeJudge.requests[0]["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert FakeJudge.requests[0]["messages"][0]["content"] == PROMPT_FILE["SYSTEM"]
    failing = RewardConfig(judge_url=f"{server}/error/v1", judge_cache="off")
    r = score_batch([good], ["I214"], config=failing, notes=[NOTE])[0]
    assert r.judge_score is None and r.components["judge"] == 0.0 and r.score == 61.0


def test_reward_score_cli_with_a_judge_prompt_file(server, kb_file, prompt_file, tmp_path, runner):
    from icdreason.cli import app

    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"id": "a", "response": f"{TRACE}</think>\n<diagnosis>I214</diagnosis>", "gold": "I21.4",
                             "note": NOTE}) + "\n")
    result = runner.invoke(app, ["reward", "score", str(f), "--judge-url", f"{server}/ok/v1", "--judge-prompt",
                                 str(prompt_file), "--set", "judge_cache=off"])
    assert result.exit_code == 0, result.output
    means = {cells[0]: cells[1] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                              for line in result.stdout.splitlines() if line.count("│") == 6)}
    assert means["judge"] == "3.2000" and means["score"] == "64.2000"  # 60 + 1 + 0.8 x 4
    assert FakeJudge.requests[0]["messages"][0]["content"] == PROMPT_FILE["SYSTEM"]
