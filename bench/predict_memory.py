"""Benchmark: peak memory (RSS) and notes/s of ``icdreason predict`` as the number of notes grows.

Run: python bench/predict_memory.py --notes 10000,100000 --formats jsonl,parquet --kb /path/to/icd10cm.duckdb
     [--tree /path/to/another/checkout]  (runs that checkout's code instead: e.g. main, for a before/after table)

The notes are the twelve synthetic examples, lengthened to 1-3 KB with varied exam and results lines and given
distinct ids (``bench/retriever.py``'s ``make_notes``), written once per size to a Parquet table in ``--work``
(streamed: the generator itself holds one row group). Each row of the table is one run of
``icdreason predict NOTES.parquet --out preds.FORMAT -q`` with the retriever engine (the default), in a
fresh process; its peak resident memory is the kernel's ``ru_maxrss`` for that process (``os.wait4``), and notes/s is
notes divided by the wall time of the whole command, start-up (Python, knowledge base, BM25 index) included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retriever import make_notes  # noqa: E402  (the same synthetic notes as the retriever benchmark)


def notes_table(work: Path, count: int) -> Path:
    """A Parquet table of ``count`` notes (id, text), written row group by row group; reused when present."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = work / f"notes_{count}.parquet"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        step = 10_000
        for start in range(0, count, step):
            part = make_notes(min(step, count - start), seed=start)
            ids = [f"bench{start + i:07d}" for i in range(len(part))]
            writer.write_table(pa.table({"id": ids, "text": [t for _, t in part]}, schema=schema))
    os.replace(tmp, path)
    return path


def run_once(tree: Path, notes: Path, out: Path, kb: str | None) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``icdreason predict`` process running ``tree``'s code."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    if kb:
        env["ICDREASON_KB"] = kb
    cmd = [sys.executable, "-m", "icdreason", "predict", str(notes), "--out", str(out), "-q",
           "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="10000,100000", help="comma-separated note counts")
    parser.add_argument("--formats", default="jsonl,parquet", help="comma-separated output formats")
    parser.add_argument("--kb", default=None, help="knowledge-base file (default: ICDREASON_KB or the home default)")
    parser.add_argument("--tree", default=str(Path(__file__).resolve().parents[1]),
                        help="the checkout whose code runs (default: this one)")
    parser.add_argument("--label", default=None, help="name of the tree in the table (default: its folder)")
    parser.add_argument("--work", default=None, help="folder for the note tables and outputs (default: TMPDIR)")
    args = parser.parse_args()
    work = Path(args.work or os.environ.get("TMPDIR", "/tmp")) / "predict_memory"
    work.mkdir(parents=True, exist_ok=True)
    label = args.label or Path(args.tree).name
    console = Console()
    table = Table(title=f"icdreason predict (retriever): peak RSS and notes/s, code from {label}")
    for col in ("notes", "output", "peak RSS MB", "wall s", "notes/s"):
        table.add_column(col, justify="left" if col == "output" else "right")
    for count in (int(c) for c in args.notes.split(",")):
        notes = notes_table(work, count)
        for fmt in args.formats.split(","):
            out = work / f"preds_{label}_{count}.{fmt}"
            rss, seconds = run_once(Path(args.tree), notes, out, args.kb)
            table.add_row(f"{count:,}", fmt, f"{rss:,.0f}", f"{seconds:.1f}", f"{count / seconds:.0f}")
            console.print(f"{count} notes -> {fmt}: {rss:.0f} MB, {seconds:.1f} s", style="dim")
            out.unlink(missing_ok=True)
    console.print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"CPU: {os.cpu_count()} cores visible, load average {load:.1f}; python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
