"""Figures for issue 14 (nothing lost, nothing silently wrong): what `icdreason predict` writes, its exit code and how
long it takes to stop, on hostile input, concurrent runs, dead and misbehaving servers, and signals.

Run: python bench/hostile_runs.py --kb /path/to/icd10cm.duckdb [--notes 1000] [--only NAME ...]

Every scenario runs the real command in a subprocess against servers started here on 127.0.0.1 (the scripted
OpenAI-compatible server of the tests; nothing listening; a port that answers 500 to everything). Each prints one
row: records written / notes, distinct ids, duplicates, unreadable lines, exit codes, seconds, and what the run log
says. Run it on two commits to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "cli_tests")]

from fake_openai_server import FakeServer  # noqa: E402

ICDREASON = Path(sys.executable).parent / "icdreason"
EXAMPLES = ROOT / "examples" / "notes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notes(path: Path, count: int, odd: dict[int, str] | None = None) -> list[str]:
    """``count`` JSONL notes (the examples, varied); ``odd`` maps a position to a raw JSON line to put there."""
    texts = [p.read_text() for p in sorted(EXAMPLES.glob("*.txt"))]
    ids = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(count):
            if odd and i in odd:
                fh.write(odd[i] + "\n")
                ids.append(json.loads(odd[i])["id"] if "\\ud" not in odd[i] else f"odd{i}")
                continue
            ids.append(f"note{i:05d}")
            fh.write(json.dumps({"id": ids[-1], "text": texts[i % len(texts)] + f"\nVisit {i}."}) + "\n")
    return ids


def count_lines(path: Path) -> dict[str, int]:
    """Records, distinct ids, duplicates and unreadable lines of a JSONL output, read line by line."""
    if not path.exists():
        return {"records": 0, "distinct": 0, "duplicates": 0, "unreadable": 0}
    ids, bad = [], 0
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError):
            bad += 1
    return {"records": len(ids), "distinct": len(set(ids)), "duplicates": len(ids) - len(set(ids)), "unreadable": bad}


def jsonl(path: Path) -> list[dict]:
    """The records of a JSONL output (lines end at \\n only; unreadable lines are left out)."""
    rows = []
    for line in path.read_bytes().split(b"\n") if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def run(args: list[str], env: dict, timeout: float = 600) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        done = subprocess.run([str(ICDREASON), "predict", *args], env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_default_signals)
    except subprocess.TimeoutExpired as exc:
        return -999, time.monotonic() - started, f"still running after {timeout:g} s: killed. {exc.stderr or ''}"
    return done.returncode, time.monotonic() - started, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def db_runs(db: Path) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT status, sessions, notes, command FROM runs").fetchall()
    finally:
        con.close()


# -- scenarios -----------------------------------------------------------------------------------------------------
def surrogate(work: Path, env: dict, n: int) -> dict:
    """Item 1: a lone surrogate in note n/2; predict, --resume, then eval on the input."""
    notes = work / "notes.jsonl"
    write_notes(notes, n, {n // 2: '{"id": "odd", "text": "chest pain \\ud83d NSTEMI, troponin up"}'})
    out = work / "pred.jsonl"
    rc1, s1, err1 = run([str(notes), "--out", str(out), "-q", "--batch-size", "50"], env)
    first = count_lines(out)["records"]
    rc2, _, err2 = run([str(notes), "--out", str(out), "-q", "--resume", "--batch-size", "50"], env)
    gold = work / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": r["id"], "gold": "I21.4"}) + "\n"
                            for r in jsonl(out)))
    with open(gold, "a") as fh:
        fh.write('{"id": "odd\\udc00", "gold": "I21.4"}\n')
    rc3, _, err3 = _eval(out, gold, env)
    return {"scenario": "1 surrogate", "notes": n, "first run": f"rc {rc1}, {first} records",
            "resume": f"rc {rc2}, {count_lines(out)['records']} records", "eval": f"rc {rc3}",
            "last line": (err2 or err1 or err3)[-90:]}


def _eval(out: Path, gold: Path, env: dict) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run([str(ICDREASON), "eval", str(out), "--gold", str(gold)], env=env, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, time.monotonic() - started, done.stderr.strip()[-200:]


def concurrent(work: Path, env: dict, n: int, suffix: str = "jsonl") -> dict:
    """Item 2: two `predict --resume` on the same --out, started together."""
    notes = work / "notes.jsonl"
    write_notes(notes, n)
    out = work / f"pred.{suffix}"
    args = [str(notes), "--out", str(out), "--resume", "-q", "--batch-size", "16"]
    procs = [subprocess.Popen([str(ICDREASON), "predict", *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1].strip().splitlines() for p in procs]
    codes = [p.returncode for p in procs]
    if suffix == "jsonl":
        counted = count_lines(out)
    else:
        from icdreason.records import read_predictions

        try:
            ids = [r["id"] for r in read_predictions(out)]
            counted = {"records": len(ids), "distinct": len(set(ids)), "duplicates": len(ids) - len(set(ids)),
                       "unreadable": 0}
        except Exception as exc:  # noqa: BLE001 - what a reader makes of the file
            counted = {"records": f"unreadable: {type(exc).__name__}", "distinct": "-", "duplicates": "-",
                       "unreadable": "-"}
    return {"scenario": f"2 two --resume ({suffix})", "notes": n, "exit codes": codes, **counted,
            "second's last line": next((e[-1] for e in errs if e), "")[-110:]}


def dead_server(work: Path, env: dict, n: int, kind: str, extra: list[str]) -> dict:
    """Item 5: every note against a server that is not there (nothing listening) or answers 500 to everything."""
    notes = work / "notes.jsonl"
    write_notes(notes, n)
    out = work / "pred.jsonl"
    server = None
    if kind == "nothing listening":
        url = f"http://127.0.0.1:{free_port()}/v1"
    else:
        server = FakeServer(status=500).__enter__()
        url = server.url
    try:
        args = [str(notes), "--engine", "openai", "--model", "m", "--base-url", url, "--out", str(out), "-q", *extra]
        rc, seconds, err = run(args, env, timeout=900)
        first = count_lines(out)
        errors = sum(1 for r in jsonl(out) if r.get("error"))
        rc2, _, err2 = run([*args, "--resume"], env, timeout=900)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return {"scenario": f"5 dead server: {kind}", "notes": n, "options": " ".join(extra), "exit code": rc,
            "seconds to stop": round(seconds, 1), "records": first["records"], "error records": errors,
            "last line": err[-120:], "resume": f"rc {rc2}: {err2[-80:]}"}


def sigterm(work: Path, env: dict, n: int) -> dict:
    """Item 14: SIGTERM after the first batch, then --resume; the run log's status and notes."""
    notes = work / "notes.jsonl"
    write_notes(notes, n)
    out, db = work / "pred.jsonl", work / "log.duckdb"
    args = [str(notes), "--out", str(out), "--db", str(db), "-q", "--batch-size", "50"]
    proc = subprocess.Popen([str(ICDREASON), "predict", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and count_lines(out)["records"] == 0 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    after_term = count_lines(out)["records"]
    status_after_term = db_runs(db)[0][0]
    # a second session killed with SIGKILL after its first batch, then a third that finishes
    proc = subprocess.Popen([str(ICDREASON), "predict", *args, "--resume"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=_default_signals)
    while time.monotonic() < deadline and count_lines(out)["records"] == after_term and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    rc, _, _ = run([*args, "--resume"], env)
    status, sessions, logged, _ = db_runs(db)[0]
    return {"scenario": "14 SIGTERM, SIGKILL, resume", "notes": n, "final resume exit code": rc,
            "status after SIGTERM": status_after_term, "records after SIGTERM": after_term,
            "final status": status, "sessions": sessions, "runs.notes": logged,
            "records in the file": count_lines(out)["records"]}


def sigterm_code(work: Path, env: dict, n: int) -> dict:
    notes = work / "notes.jsonl"
    write_notes(notes, n)
    out, db = work / "pred.jsonl", work / "log.duckdb"
    args = [str(notes), "--out", str(out), "--db", str(db), "-q", "--batch-size", "50"]
    proc = subprocess.Popen([str(ICDREASON), "predict", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and count_lines(out)["records"] == 0 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return {"scenario": "14 SIGTERM exit", "notes": n, "exit code": proc.returncode,
            "run status": db_runs(db)[0][0], "records kept": count_lines(out)["records"],
            "last line": (err.strip().splitlines() or [""])[-1][-100:]}


def trickle(work: Path, env: dict, n: int) -> dict:
    """Item 7: a server that sends its answer one byte per second, --timeout 2 (predict) and timeout 2 (scrape)."""
    notes = work / "notes.jsonl"
    write_notes(notes, 2)
    with FakeServer(trickle=1.0) as server:
        rc, seconds, err = run([str(notes), "--engine", "openai", "--model", "m", "--base-url", server.url,
                                "--timeout", "2", "--retries", "0", "-q", "--out", str(work / "t.jsonl")], env,
                               timeout=60)
        from icdreason.scrape.http import FetchOptions, PoliteFetcher

        started = time.monotonic()
        result = None
        import threading

        def fetch():
            nonlocal result
            with PoliteFetcher(FetchOptions(timeout=2, retries=0, respect_robots=False, rate=100)) as f:
                result = f.fetch(server.url + "/models")

        t = threading.Thread(target=fetch, daemon=True)
        t.start()
        t.join(60)
        scrape_s = time.monotonic() - started
    return {"scenario": "7 trickling server, timeout 2 s", "predict exit": rc, "predict seconds": round(seconds, 1),
            "scrape seconds": round(scrape_s, 1) if result is not None else f"> {scrape_s:.0f} (still running)",
            "scrape result": getattr(result, "reason", None) or getattr(result, "outcome", None)}


def secrets(work: Path, env: dict, n: int) -> dict:
    """Item 8: a password in --base-url, then an API key, each echoed back by a server answering 401."""
    import base64

    import duckdb

    notes = work / "notes.jsonl"
    write_notes(notes, 2)
    found = {}
    for case in ("password", "key"):
        out, db = work / f"{case}.jsonl", work / f"{case}.duckdb"
        with FakeServer(status=401) as server:
            url = server.url.replace("http://", "http://alice:hunter2pw@") if case == "password" else server.url
            run([str(notes), "--engine", "openai", "--model", "m", "--base-url", url, "--retries", "0", "--out",
                 str(out), "--db", str(db), "-q"], {**env, "OPENAI_API_KEY": "sk-topsecret-999"})
        con = duckdb.connect(str(db), read_only=True)
        log = " ".join(str(v) for table in ("runs", "predictions")
                       for row in con.execute(f"SELECT * FROM {table}").fetchall() for v in row)
        command = con.execute("SELECT command FROM runs").fetchall()[0][0]
        con.close()
        stored = out.read_text() + log
        if case == "password":
            basic = base64.b64encode(b"alice:hunter2pw").decode()
            found["password in runs.command"] = "hunter2pw" in command
            found["password (or its Basic token) stored"] = "hunter2pw" in stored or basic in stored
        else:
            found["API key stored (401 echo)"] = "sk-topsecret" in stored
    return {"scenario": "8 secrets", **found}


def content_shapes(work: Path, env: dict, n: int) -> dict:
    """Item 6: content that is a number, a list of parts, or null beside reasoning_content."""
    notes = work / "notes.jsonl"
    with open(notes, "w") as fh:
        for shape in ("number", "parts", "null"):
            fh.write(json.dumps({"id": shape, "text": f"low back pain @content:{shape} radiating"}) + "\n")
        fh.write(json.dumps({"id": "plain", "text": "low back pain radiating to the leg"}) + "\n")
    out = work / "pred.jsonl"
    with FakeServer() as server:
        rc, _, err = run([str(notes), "--engine", "openai", "--model", "m", "--base-url", server.url, "--out",
                          str(out), "-q"], env, timeout=60)
    rows = jsonl(out)
    return {"scenario": "6 content shapes", "exit code": rc, "records": f"{len(rows)}/4",
            "per note": "; ".join(f"{r['id']}: {r['code'] or r['status']}{' (error)' if r.get('error') else ''}"
                                  for r in rows), "last line": err[-100:]}


def line_breaks(work: Path, env: dict, n: int) -> dict:
    """Item 13: U+2028, U+0085 and a raw CR inside JSONL lines."""
    notes = work / "notes.jsonl"
    with open(notes, "w", encoding="utf-8", newline="") as fh:
        fh.write(json.dumps({"id": "ls", "text": "chest pain\u2028radiating to the left arm"}, ensure_ascii=False) + "\n")
        fh.write(json.dumps({"id": "nel", "text": "fever\u0085productive cough"}, ensure_ascii=False) + "\n")
        fh.write('{"id": "cr",\r "text": "hip fracture after a fall"}\n')
        fh.write('{"id": "crlf", "text": "cellulitis of the leg"}\r\n')
    out = work / "pred.jsonl"
    rc, _, err = run([str(notes), "--out", str(out), "-q"], env)
    rows = jsonl(out)
    return {"scenario": "13 line breaks in JSONL", "exit code": rc, "ids": [r["id"] for r in rows],
            "unreadable": sum(1 for r in rows if "unreadable" in r["flags"])}


SCENARIOS = {
    "surrogate": surrogate,
    "concurrent": concurrent,
    "concurrent-csv": lambda w, e, n: concurrent(w, e, n, "csv"),
    "dead": lambda w, e, n: dead_server(w, e, n, "nothing listening", ["--retries", "0"]),
    "dead500": lambda w, e, n: dead_server(w, e, n, "answers 500", ["--retries", "0"]),
    "dead-defaults": lambda w, e, n: dead_server(w, e, n, "nothing listening", []),
    "dead500-defaults": lambda w, e, n: dead_server(w, e, n, "answers 500", []),
    "sigterm": sigterm_code,
    "sigterm-resume": sigterm,
    "trickle": trickle,
    "secrets": secrets,
    "content": content_shapes,
    "linebreaks": line_breaks,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", required=True, help="a built knowledge base (with the retriever index cached)")
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="scenarios to run (default: all)")
    args = parser.parse_args()
    for name in args.only or list(SCENARIOS):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "ICDREASON_KB": str(Path(args.kb).resolve()), "ICDREASON_HOME": f"{tmp}/home",
                   "COLUMNS": "200", "NO_COLOR": "1"}
            env.pop("OPENAI_BASE_URL", None)
            env.pop("OPENAI_API_KEY", None)
            row = SCENARIOS[name](Path(tmp), env, args.notes)
            print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
