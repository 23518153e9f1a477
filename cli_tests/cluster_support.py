"""Shared by the ``--ray`` tests: one local Ray for the whole session, a table of notes, and an engine that kills its
own worker process on chosen notes (a segfault or the OOM killer, as Ray sees it).

Ray starts once per session (about 10 s): a 2-CPU local cluster, its workers able to import this folder's modules.
It is shut down when the session ends. Nothing here ever runs ``ray stop``, which would stop every Ray on the host.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from icdreason.engines.base import Engine, EngineOptions, Generation, Prompt, SamplingParams

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "notes"


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray (2 CPUs) for the session; yields its address (HOST:PORT) for drivers in other processes."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'icdreason[ray]')")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED")}
    os.environ.pop("RAY_ADDRESS", None)  # never join someone else's cluster
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), saved["PYTHONPATH"]) if p)  # the workers'
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def note_table(path: Path, count: int) -> list[str]:
    """A JSONL table of ``count`` notes (the example notes over and over, each made distinct); returns the ids."""
    texts = [p.read_text() for p in sorted(EXAMPLES.glob("*.txt"))]
    ids = [f"note{i:04d}" for i in range(count)]
    with open(path, "w", encoding="utf-8") as fh:
        for i, note_id in enumerate(ids):
            fh.write(json.dumps({"id": note_id, "text": texts[i % len(texts)] + f"\nVisit {i}."}) + "\n")
    return ids


@dataclass
class CrashingOptions(EngineOptions):
    crash_on: list = field(default_factory=list, metadata={"help": "note ids whose generation kills the process"})


class CrashingEngine(Engine):
    """A test double: answers every note with one well-formed code, but its process dies (``os._exit``) whenever it
    is given a note listed in ``crash_on``, as a worker killed by a segfault or the OOM killer would."""

    name = "crashing"
    Options = CrashingOptions

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        if any(p.note_id in self.options.crash_on for p in prompts):
            os._exit(1)
        return [Generation(texts=[f"{p.note_id} looks like hypertension</think><diagnosis>I10</diagnosis>"],
                           tokens_in=len(p.note.split()), tokens_out=9) for p in prompts]
