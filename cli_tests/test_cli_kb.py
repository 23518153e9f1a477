"""`icdreason kb …` through CliRunner and through the installed console script."""

import json
import os
import shutil
import subprocess
import sys

from icdreason.cli import app


def test_lookup_shows_path_billable_and_notes(runner, kb_file):
    result = runner.invoke(app, ["kb", "lookup", "I21.4", " m51.16 "])
    assert result.exit_code == 0, result.stderr
    assert "Non-ST elevation (NSTEMI) myocardial infarction" in result.stdout
    assert "I20-I25 Ischemic heart diseases" in result.stdout
    assert "path: 9 (I00-I99) Diseases of the circulatory system → I20-I25" in result.stdout  # one chapter form
    assert "Intervertebral disc disorders with radiculopathy, lumbar region" in result.stdout
    assert "inclusion term" in result.stdout


def test_lookup_header_counts_billable_descendants(runner, kb_file):
    result = runner.invoke(app, ["kb", "lookup", "M51", "--json"])
    card = json.loads(result.stdout)
    assert card["billable"] is False
    assert card["billable_below"] == kb_billable_below(kb_file, "M51")
    assert [p["code"] for p in card["path"]][0] == "13"


def kb_billable_below(kb_file, prefix):
    import duckdb

    con = duckdb.connect(str(kb_file), read_only=True)
    try:
        return con.execute(
            "SELECT count(*) FROM codes WHERE billable AND starts_with(code_nodot, ?)", [prefix]
        ).fetchone()[0]
    finally:
        con.close()


def test_lookup_unknown_code_exits_1(runner, kb_file):
    result = runner.invoke(app, ["kb", "lookup", "Z99.9"])
    assert result.exit_code == 1
    assert "not in ICD-10-CM 2026" in result.stdout


def test_info(runner, kb_file):
    result = runner.invoke(app, ["kb", "info", "--json"])
    facts = json.loads(result.stdout)
    assert facts["billable"] == 74_719
    assert facts["release"] == "2026"
    plain = runner.invoke(app, ["kb", "info"])
    assert "D50-D89" in plain.stdout and "U00-U85" in plain.stdout


def test_search(runner, kb_file):
    result = runner.invoke(app, ["kb", "search", "nstemi", "--limit", "3", "--json"])
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert hits[0]["code"] == "I21.4"
    empty = runner.invoke(app, ["kb", "search", "  "])
    assert empty.exit_code == 2 and "empty query" in empty.stderr


def test_build_force_never_replaces_a_file_that_is_not_a_knowledge_base(runner, tmp_path):
    path = tmp_path / "kb.duckdb"
    path.write_bytes(b"garbage" * 1000)
    broken = runner.invoke(app, ["kb", "info", "--kb", str(path)])
    assert broken.exit_code == 1
    assert "delete it and run `icdreason kb build`" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1  # one line, no traceback
    refused = runner.invoke(app, ["kb", "build", "--kb", str(path), "--force"])
    assert refused.exit_code == 1 and "refusing to build over it" in refused.stderr
    assert path.read_bytes() == b"garbage" * 1000
    path.unlink()  # what the message says to do
    rebuilt = runner.invoke(app, ["kb", "build", "--kb", str(path)])
    assert rebuilt.exit_code == 0, rebuilt.stderr
    assert runner.invoke(app, ["kb", "info", "--kb", str(path)]).exit_code == 0


def _script() -> str:
    found = shutil.which("icdreason", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert found, "the icdreason console script is not installed"
    return found


def test_installed_script_lookup(kb_file):
    env = {**os.environ, "ICDREASON_KB": str(kb_file), "COLUMNS": "200"}
    done = subprocess.run([_script(), "kb", "lookup", "I21.4", "M51.16"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "I21.4" in done.stdout and "M51.16" in done.stdout


def test_installed_script_validate_exit_codes(kb_file):
    env = {**os.environ, "ICDREASON_KB": str(kb_file)}
    good = subprocess.run([_script(), "validate", "I21.4"], capture_output=True, text=True, env=env, timeout=120)
    assert good.returncode == 0
    bad = subprocess.run([_script(), "validate", "I21.4", "M51"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    usage = subprocess.run([_script(), "validate", "--nope"], capture_output=True, text=True, env=env, timeout=120)
    assert usage.returncode == 2


def test_debug_env_shows_traceback(tmp_path):
    path = tmp_path / "kb.duckdb"
    path.write_bytes(b"garbage" * 1000)
    env = {**os.environ, "ICDREASON_KB": str(path), "ICDREASON_DEBUG": "1"}
    done = subprocess.run([_script(), "kb", "info"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    assert "Traceback" in done.stderr
