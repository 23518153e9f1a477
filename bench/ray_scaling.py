"""Benchmark: the retriever in-process against `--ray` with 1 and 2 replicas, on a local 2-CPU Ray.

Run: python bench/ray_scaling.py [--notes 3000] [--kb PATH] [--repeat 2]

The notes are bench/retriever.py's (1-3 KB, no two alike). Each configuration runs the whole prediction of
``icdreason predict`` as a library call (``run_predict``: prompts, engine, parsing, validation, voting, JSONL
records), in-process or with ``runner=predict_on_ray`` and a :class:`~icdreason.cluster.RayEngine`:

- wall s: from the call to the last record written, Ray's per-run costs included (actors started, each loading the
  knowledge base and the BM25 index; the Dataset planned and streamed);
- first record s: how long until the first batch of records is on disk;
- steady notes/s: the notes after the first batch over the time after it (the rate once the replicas run);
- Ray overhead per note: (Ray wall - in-process wall) / notes.

``ray.init`` (a new local cluster, once per CLI run) is timed on its own. Configurations run in turn, ``--repeat``
times each, on the same Ray; every row is one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retriever import make_notes  # noqa: E402


def run(config: str, notes, kb, tmp: Path, replicas: int) -> dict:
    from icdreason.cluster import RayEngine, plan_for, predict_on_ray
    from icdreason.engines.retriever import RetrieverEngine
    from icdreason.predict import PredictSettings, run_predict

    times: list[float] = []

    def on_records(records) -> None:
        times.append(time.perf_counter())

    out = tmp / f"{config}-{time.time_ns()}.jsonl"
    settings = PredictSettings(batch_size=64)
    started = time.perf_counter()
    cpu = time.process_time()
    if replicas == 0:
        with RetrieverEngine(None, RetrieverEngine.Options(), kb) as engine:
            summary = run_predict(notes, engine=engine, kb=kb, out=str(out), settings=settings,
                                  on_records=on_records)
    else:
        plan = plan_for(RetrieverEngine, None, RetrieverEngine.Options(), address="local", replicas=replicas,
                        batch_size=64)
        with RayEngine(RetrieverEngine, None, RetrieverEngine.Options(), kb, plan, progress_bars=False) as engine:
            summary = run_predict(notes, engine=engine, kb=kb, out=str(out), settings=settings,
                                  on_records=on_records, runner=predict_on_ray)
    wall = time.perf_counter() - started
    assert summary.predicted == len(notes), summary
    first = times[0] - started
    steady = (len(notes) - 64) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {"config": config, "wall": wall, "first": first, "steady": steady, "driver_cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--kb", default=None, help="knowledge-base file (default: ICDREASON_KB or the home default)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    console = Console(width=150)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray

    from icdreason.kb import KnowledgeBase
    from icdreason.notes import Note

    raw = make_notes(args.notes)
    notes = [Note(i, t, f"{i}.txt") for i, t in raw]
    kb = KnowledgeBase.open(args.kb)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    t_init = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for config, replicas in (("in-process", 0), ("ray, 1 replica", 1), ("ray, 2 replicas", 2)):
                rows.append(run(config, notes, kb, Path(tmp), replicas))
                console.print(rows[-1])
    ray.shutdown()
    base = min(r["wall"] for r in rows if r["config"] == "in-process")
    n = len(notes)
    table = Table(title=f"retriever on {n} notes: in-process vs Ray Data (local Ray, 2 CPUs)")
    for col in ("configuration", "wall s", "notes/s (wall)", "first record s", "steady notes/s", "driver CPU s",
                "Ray overhead per note"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for r in rows:
        extra = "" if r["config"] == "in-process" else f"{(r['wall'] - base) / n * 1e3:.2f} ms"
        table.add_row(r["config"], f"{r['wall']:.2f}", f"{n / r['wall']:.0f}", f"{r['first']:.2f}",
                      f"{r['steady']:.0f}", f"{r['driver_cpu']:.2f}", extra)
    console.print(table)
    load = os.getloadavg()[0]
    console.print(f"ray.init (new local cluster, 2 CPUs): {t_init:.1f} s. CPU: {os.cpu_count()} cores, load average "
                  f"{load:.1f}; python {sys.version.split()[0]}, ray {ray.__version__}.")


if __name__ == "__main__":
    main()
