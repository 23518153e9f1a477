"""Benchmark: the retriever in-process against `--ray` with 1 and 2 replicas, on a local 2-CPU Ray.

Run: python bench/ray_scaling.py [--notes 3000] [--small 300] [--kb PATH] [--repeat 2]

The notes are bench/retriever.py's (1-3 KB, no two alike). Each configuration runs the whole prediction of
``icdreason predict`` as a library call (``run_predict``: prompts, engine, parsing, validation, voting, JSONL
records), in-process or with ``runner=predict_on_ray`` and a :class:`~icdreason.cluster.RayEngine`:

- wall s: from the call to the last record written, Ray's per-run costs included (actors started, each loading the
  knowledge base and the BM25 index; the Dataset planned and streamed);
- first record s: how long until the first batch of records is on disk;
- steady notes/s: the notes after the first batch over the time after it (the rate once the replicas run);
- driver CPU s: CPU time of this process (the in-process run does everything here; on Ray the engine runs in the
  actors' processes);
- fixed s and ms per note: each configuration also runs on ``--small`` notes; the line through the two (median) wall
  times gives a fixed cost per run and a marginal cost per note. Ray's overhead is the difference to in-process:
  per run (start-up) and per note.

``ray.init`` (a new local cluster, once per CLI run) is timed on its own. Configurations run in turn, ``--repeat``
times each, on the same Ray.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    steady = (len(notes) - len(notes) // len(times)) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {"config": config, "wall": wall, "first": first, "steady": steady, "driver_cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--kb", default=None, help="knowledge-base file (default: ICDREASON_KB or the home default)")
    parser.add_argument("--small", type=int, default=300, help="the smaller run, for fixed and per-note costs")
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
    configs = (("in-process", 0), ("ray, 1 replica", 1), ("ray, 2 replicas", 2))
    rows: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for size in (args.small, args.notes):
                for config, replicas in configs:
                    row = run(config, notes[:size], kb, Path(tmp), replicas)
                    rows.setdefault((config, size), []).append(row)
                    console.print(size, row)
    ray.shutdown()

    def median(config: str, size: int, key: str) -> float:
        return statistics.median(r[key] for r in rows[(config, size)])

    n, small = args.notes, args.small
    lines = {}
    for config, _ in configs:
        slope = (median(config, n, "wall") - median(config, small, "wall")) / (n - small)
        lines[config] = (median(config, small, "wall") - slope * small, slope)
    table = Table(title=f"retriever, {n} notes: in-process vs Ray Data on a local 2-CPU Ray (medians of "
                        f"{args.repeat} runs)")
    for col in ("configuration", "wall s", "notes/s (wall)", "first record s", "steady notes/s", "driver CPU s",
                "fixed s", "ms per note", "Ray overhead: per run", "per note"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    base_fixed, base_slope = lines["in-process"]
    for config, _ in configs:
        fixed, slope = lines[config]
        overhead = ("", "") if config == "in-process" else (f"{fixed - base_fixed:+.1f} s",
                                                           f"{(slope - base_slope) * 1e3:+.2f} ms")
        wall = median(config, n, "wall")
        table.add_row(config, f"{wall:.2f}", f"{n / wall:.0f}", f"{median(config, n, 'first'):.2f}",
                      f"{median(config, n, 'steady'):.0f}", f"{median(config, n, 'driver_cpu'):.2f}",
                      f"{fixed:.1f}", f"{slope * 1e3:.2f}", *overhead)
    console.print(table)
    load = os.getloadavg()[0]
    console.print(f"ray.init (new local cluster, 2 CPUs): {t_init:.1f} s. CPU: {os.cpu_count()} cores, load average "
                  f"{load:.1f}; python {sys.version.split()[0]}, ray {ray.__version__}.")


if __name__ == "__main__":
    main()
