"""Model profiles and prompt files: the authors' CSV prompt shape, the pinned prompt fetched once from a (local) server,
verified by sha256 and cached; every record says which prompt it was made with.

The CSV below is written for these tests in the shape of the authors' files (role,content rows); it is not their text.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import replace

import duckdb
import pytest
from predict_support import register_scripted
from scrape_server import Answer, FixtureServer

from icdreason.cli import app
from icdreason.errors import EngineError, UsageError
from icdreason.models import PROFILES, find_profile
from icdreason.models.profiles import PROMPT_BASE_URL_ENV
from icdreason.prompts import load_template
from icdreason.records import read_predictions


# Our own prompt in the authors' shape: a quoted system cell with a comma and a line break, a user row with {note}
# and escaped braces (their script fills it with str.format), the assistant row as the prefill.
OWN_CSV = (
    'role,content\n'
    'system,"You code admissions, one code each.\nAnswer inside <diagnosis> tags."\n'
    'user,"Admission note:\n{note}\nReply as {{""code"": ...}} after thinking."\n'
    'assistant,<think>\n'
)
OWN_SHA = hashlib.sha256(OWN_CSV.encode()).hexdigest()
PROMPT_PATH = "/DATEXIS/DeepICD-R1/80f64850ee6c9adeae1bced4f01912e3b195f026/src/prompts/prospective_single_icd_coding.csv"


def test_an_authors_style_csv_prompt_loads_as_it_is(tmp_path):
    path = tmp_path / "single.csv"
    path.write_bytes(OWN_CSV.encode())
    template = load_template(path)
    assert template.sha256 == OWN_SHA  # of the file's bytes, comparable with a published hash
    assert template.prefill == "<think>" and template.prefilled_think  # exactly the assistant row, no newline added
    prompt = template.render("n1", "Chest pain since this morning.")
    assert prompt.messages == [
        {"role": "system", "content": "You code admissions, one code each.\nAnswer inside <diagnosis> tags."},
        {"role": "user", "content": 'Admission note:\nChest pain since this morning.\nReply as {"code": ...} after '
                                    "thinking."},
    ]
    # Without the .csv suffix the role,content header is enough; CRLF files read the same
    other = tmp_path / "prompt.txt"
    other.write_bytes(OWN_CSV.replace("\n", "\r\n").encode())
    assert load_template(other).render("n1", "x").messages[1]["content"] == prompt.messages[1]["content"].replace(
        "Chest pain since this morning.", "x").replace("\n", "\r\n")
    assert load_template(path, prefill="").prefill == ""


@pytest.mark.parametrize("text, message", [
    ("role,text\nuser,{note}\n", "expected the header 'role,content', found role,text"),
    ("role,content\nuser,no placeholder\n", "the user row never uses {note}"),
    ("role,content\nuser,{note} and {code}\n", "may only use the field {note}, found {code}"),
    ("role,content\nuser,{note}\nuser,{note}\n", "expected one user row"),
    ("role,content\nassistant,<think>\nuser,{note}\n", "the assistant row (the prefill) must be the last row"),
    ("role,content\nuser,{note}\nsystem,s\n", "the system row must come first"),
    ("role,content\ndoctor,{note}\n", "row 2: unknown role 'doctor'"),
    ("role,content\nuser\n", "row 2: expected two cells"),
    ("role,content\nuser,{note} {\n", "not a valid format string"),
])
def test_a_csv_prompt_of_another_shape_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        load_template(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_the_released_models_resolve_to_profiles():
    seven = find_profile("DeepICD-R1-7B")
    assert seven is PROFILES["DeepICD-R1-7B"] is find_profile("datexis/deepicd-r1-7b") is find_profile("deepicd-r1-7b")
    assert (seven.hub_id, seven.prefill, seven.answer_form, seven.eval_preset) == (
        "DATEXIS/DeepICD-R1-7B", "<think>", "undotted", "deepicd-r1-eval")
    assert seven.prompt.url("http://h") == "http://h" + PROMPT_PATH
    assert seven.prompt.sha256 == "ec8cff55dfefa29f0c053ee6002df27045ed7ff9cd525eefbf124cbeccba273d"
    assert find_profile("DeepICD-R1-zero-32B").hub_id == "DATEXIS/DeepICD-R1-zero-32B"
    assert find_profile("Qwen/Qwen2.5-7B-Instruct") is None and find_profile(None) is None


def _own_profile():
    """The 7B profile pinned to our fixture's hash (the real pin is the authors' file, which tests do not hold)."""
    seven = PROFILES["DeepICD-R1-7B"]
    return replace(seven, prompt=replace(seven.prompt, sha256=OWN_SHA))


def test_the_prompt_is_fetched_once_verified_and_cached(icdreason_home, monkeypatch):
    profile = _own_profile()
    with FixtureServer({PROMPT_PATH: [Answer(200, OWN_CSV, content_type="text/plain")]}) as server:
        monkeypatch.setenv(PROMPT_BASE_URL_ENV, server.base_url)
        template = profile.template()
        assert server.hits[PROMPT_PATH] == 1
        assert profile.template().sha256 == OWN_SHA and server.hits[PROMPT_PATH] == 1  # from the cache
    cached = icdreason_home / "prompts" / "DATEXIS" / "DeepICD-R1" / profile.prompt.commit / profile.prompt.path
    assert cached.read_bytes() == OWN_CSV.encode()
    assert template.prefill == "<think>" and template.source == server.base_url + PROMPT_PATH
    assert template.name == "DeepICD-R1-7B prompt (DATEXIS/DeepICD-R1@80f6485:src/prompts/prospective_single_icd_coding.csv)"
    # the server is gone: the cached copy still serves; a damaged copy is not used
    assert profile.template(prefill="").prefill == ""
    cached.write_bytes(b"role,content\nuser,{note}\n")
    with pytest.raises(EngineError, match="cannot download"):
        profile.template()


def test_a_prompt_that_does_not_match_its_pin_is_refused_and_not_cached(icdreason_home, monkeypatch):
    profile = PROFILES["DeepICD-R1-7B"]  # pinned to the authors' file; the server sends ours
    with FixtureServer({PROMPT_PATH: [Answer(200, OWN_CSV)]}) as server:
        monkeypatch.setenv(PROMPT_BASE_URL_ENV, server.base_url)
        with pytest.raises(EngineError) as err:
            profile.template()
    message = str(err.value)
    assert f"has sha256 {OWN_SHA[:12]}…, not the pinned ec8cff55dfef…" in message
    assert "pass --prompt-template FILE" in message and "\n" not in message
    assert not (icdreason_home / "prompts").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_or_missing_prompt_names_the_fix(monkeypatch):
    monkeypatch.setenv(PROMPT_BASE_URL_ENV, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(EngineError) as err:
        PROFILES["DeepICD-R1-zero-32B"].template()
    assert str(err.value).startswith("cannot download the prompt DeepICD-R1-zero-32B was trained with from http://127.0.0.1")
    assert "offline?" in str(err.value) and "pass --prompt-template FILE" in str(err.value)
    with FixtureServer({}) as server:  # 404
        monkeypatch.setenv(PROMPT_BASE_URL_ENV, server.base_url)
        with pytest.raises(EngineError, match=r"\(HTTP 404\): pass --prompt-template FILE"):
            PROFILES["DeepICD-R1-7B"].template()


def test_predict_with_a_profile_records_the_prompt_it_used(runner, retriever_kb, tmp_path, monkeypatch):
    register_scripted()
    monkeypatch.setenv("ICDREASON_KB", str(retriever_kb))
    monkeypatch.setitem(PROFILES, "DeepICD-R1-7B", _own_profile())
    note = tmp_path / "n.txt"
    note.write_text("Chief Complaint: chest pain")
    out, db = tmp_path / "o.jsonl", tmp_path / "runs.duckdb"
    with FixtureServer({PROMPT_PATH: [Answer(200, OWN_CSV)]}) as server:
        monkeypatch.setenv(PROMPT_BASE_URL_ENV, server.base_url)
        shown = runner.invoke(app, ["predict", str(note), "--model", "DeepICD-R1-7B", "--show-prompt"])
        assert shown.exit_code == 0, shown.stderr
        assert "Reply as {\"code\": ...}" in shown.stdout and f"sha256 {OWN_SHA}" in shown.stdout
        result = runner.invoke(app, ["predict", str(note), "--engine", "scripted", "--model", "DeepICD-R1-7B",
                                     "--out", str(out), "--db", str(db), "-q",
                                     "-E", 'responses={"n": ["x</think><diagnosis>I214</diagnosis>"]}'])
    assert result.exit_code == 0, result.stderr
    assert "model profile DeepICD-R1-7B: prompt DATEXIS/DeepICD-R1@80f6485" in " ".join(result.stderr.split())
    [record] = read_predictions(out)
    params = record["parameters"]
    assert params["prompt_template_sha256"] == OWN_SHA
    assert params["prompt_source"] == server.base_url + PROMPT_PATH
    assert params["prompt_template"].startswith("DeepICD-R1-7B prompt (DATEXIS/DeepICD-R1@80f6485")
    with duckdb.connect(str(db), read_only=True) as con:
        name, digest, logged = con.execute("SELECT prompt_template, prompt_template_hash, parameters FROM runs").fetchone()
    assert (name, digest) == (params["prompt_template"], OWN_SHA)
    assert json.loads(logged)["prompt_source"] == params["prompt_source"]


def test_predict_offline_with_a_profile_is_one_line_and_a_file_replaces_it(runner, retriever_kb, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("ICDREASON_KB", str(retriever_kb))
    monkeypatch.setenv(PROMPT_BASE_URL_ENV, f"http://127.0.0.1:{_closed_port()}")
    note = tmp_path / "n.txt"
    note.write_text("Chief Complaint: chest pain")
    result = runner.invoke(app, ["predict", str(note), "--model", "DeepICD-R1-7B", "--show-prompt"])
    assert result.exit_code == 1
    assert "pass --prompt-template FILE" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    mine = tmp_path / "mine.csv"
    mine.write_text(OWN_CSV)
    result = runner.invoke(app, ["predict", str(note), "--model", "DeepICD-R1-7B", "--show-prompt",
                                 "--prompt-template", str(mine)])
    assert result.exit_code == 0 and "Admission note:" in result.stdout and OWN_SHA in result.stdout
    bundled = runner.invoke(app, ["predict", str(note), "--model", "DeepICD-R1-7B", "--show-prompt",
                                  "--prompt-template", "deepicd_r1"])
    assert bundled.exit_code == 0 and "[ADMISSION NOTE]" in bundled.stdout
    assert "icdreason's own wording of the task" in " ".join(bundled.stdout.split())
