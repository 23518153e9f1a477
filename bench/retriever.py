"""Benchmark: the retriever engine's notes/s on 1-3 KB admission notes, alone and through the whole pipeline.

Run: python bench/retriever.py [--notes 2000] [--kb PATH]
Notes are the twelve synthetic examples, each lengthened to 1-3 KB with extra (varied) exam and results lines, so
that no two notes are identical. Three figures:

- engine: ``RetrieverEngine.generate`` alone (sections, negation, weighted BM25, trace);
- pipeline: ``icdreason.predict.predict`` (prompts, engine, parsing, validation, vote, records to a JSONL file);
- CLI: ``icdreason predict notes.jsonl --out …`` wall time including start-up (Python, knowledge base, index).

Start-up costs (opening the knowledge base, loading the cached BM25 index) are reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
EXTRA = [
    "Labs: Na 138, K 4.1, Cl 102, HCO3 24, BUN 18, Cr 1.0, glucose 142, WBC 9.8, Hgb 12.9, Plt 245.",
    "Neuro: alert and oriented, cranial nerves intact, moves all extremities, no focal deficits.",
    "Skin: warm and dry, no rashes, no jaundice.",
    "HEENT: normocephalic, atraumatic, moist mucous membranes, oropharynx clear.",
    "Imaging: chest radiograph without acute cardiopulmonary process per preliminary read.",
    "Psych: calm, appropriate affect, good insight.",
    "Code status: full code, confirmed with the patient. Contact: daughter ___.",
]


def make_notes(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    bases = [p.read_text() for p in sorted((ROOT / "examples" / "notes").glob("*.txt"))]
    notes = []
    for i in range(count):
        text = bases[i % len(bases)]
        target = rng.randint(1000, 3000)
        lines = []
        while len(text) + sum(len(x) + 1 for x in lines) < target:
            lines.append(rng.choice(EXTRA).replace("9.8", f"{rng.uniform(4, 15):.1f}"))
        notes.append((f"bench{i:06d}", text + "\n" + "\n".join(lines) + "\n"))
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--kb", default=None, help="knowledge-base file (default: ICDREASON_KB or the home default)")
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    console = Console()

    from icdreason.engines.base import Prompt
    from icdreason.engines.retriever import RetrieverEngine
    from icdreason.kb import KnowledgeBase
    from icdreason.notes import Note
    from icdreason.predict import PredictSettings, predict, sampling_for
    from icdreason.prompts import load_template
    from icdreason.records import open_writer

    raw = make_notes(args.notes)
    sizes = [len(t.encode()) for _, t in raw]
    t0 = time.perf_counter()
    kb = KnowledgeBase.open(args.kb)
    t_kb = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine = RetrieverEngine(kb=kb)
    t_index = time.perf_counter() - t0

    prompts = [Prompt(i, t, []) for i, t in raw]
    params = sampling_for(1)
    t0, c0 = time.perf_counter(), time.process_time()
    for j in range(0, len(prompts), 64):
        engine.generate(prompts[j:j + 64], params)
    t_engine, c_engine = time.perf_counter() - t0, time.process_time() - c0

    notes = [Note(i, t, f"{i}.txt") for i, t in raw]
    with tempfile.TemporaryDirectory() as tmp:
        writer = open_writer(Path(tmp) / "bench.jsonl")
        t0, c0 = time.perf_counter(), time.process_time()
        predict(notes, engine=engine, kb=kb, template=load_template(), params=params, writer=writer,
                run_id="bench", settings=PredictSettings(batch_size=64))
        t_pipeline, c_pipeline = time.perf_counter() - t0, time.process_time() - c0
        writer.close()
        t_cli = None
        if not args.skip_cli:
            table = Path(tmp) / "notes.jsonl"
            table.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in raw))
            env = dict(os.environ)
            if args.kb:
                env["ICDREASON_KB"] = args.kb
            t0 = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "icdreason"), "predict", str(table), "--out",
                            str(Path(tmp) / "cli.jsonl"), "-q", "--batch-size", "64"], check=True, env=env)
            t_cli = time.perf_counter() - t0

    n = len(raw)
    out = Table(title=f"retriever on {n} notes of {min(sizes)}-{max(sizes)} bytes (mean {sum(sizes) / n:.0f})")
    for col in ("stage", "wall s", "notes/s (wall)", "CPU s", "notes per CPU-second"):
        out.add_column(col, justify="right" if col != "stage" else "left")
    out.add_row("open knowledge base (start-up)", f"{t_kb:.2f}", "", "", "")
    out.add_row("load BM25 index + code index (start-up)", f"{t_index:.2f}", "", "", "")
    for name, t, c in (("engine.generate", t_engine, c_engine), ("pipeline (predict -> JSONL)", t_pipeline,
                                                                  c_pipeline)):
        out.add_row(name, f"{t:.2f}", f"{n / t:.0f}", f"{c:.2f}", f"{n / c:.0f}")
    if t_cli is not None:
        out.add_row("CLI wall time incl. start-up", f"{t_cli:.2f}", f"{n / t_cli:.0f}", "", "")
    console.print(out)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"CPU: {os.cpu_count()} cores visible, load average {load:.1f}; python {sys.version.split()[0]}. "
                  "Wall-clock figures fall when other processes share the cores; CPU-second figures do not.")


if __name__ == "__main__":
    main()
