"""Shared by the predict tests: a scripted test engine (the knowledge base with its retriever index, built once per
session, is conftest.py's ``retriever_kb`` / ``use_kb``).

``ScriptedEngine`` is a test double implementing the engine protocol: it returns the responses a test gives it per
note id (to exercise parsing, validation and voting on exactly the model outputs a test needs), echoes the note like
a model that repeats its input, or fails for chosen notes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icdreason.engines.base import Engine, EngineOptions, Generation, Prompt, SamplingParams

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "notes"
ICDREASON = Path(sys.executable).parent / "icdreason"


@dataclass
class ScriptedOptions(EngineOptions):
    responses: dict = field(default_factory=dict, metadata={"help": "note id -> list of response texts"})
    fail: list = field(default_factory=list, metadata={"help": "note ids whose generation raises"})
    echo_code: str = field(default="I10", metadata={"help": "code of the echo answer"})
    extra: dict = field(default_factory=dict, metadata={"help": "note id -> Generation.extra (finish_reasons, …)"})


class ScriptedEngine(Engine):
    name = "scripted"
    Options = ScriptedOptions
    uses_llm = True

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        if any(p.note_id in self.options.fail for p in prompts):
            raise RuntimeError("scripted failure")
        out = []
        for p in prompts:
            texts = self.options.responses.get(p.note_id)
            if texts is None:  # a model that repeats the note inside its reasoning
                texts = [f"{p.note}</think><diagnosis>{self.options.echo_code}</diagnosis>"] * params.n
            out.append(Generation(texts=list(texts), tokens_in=len(p.note.split()), tokens_out=7 * len(texts),
                                  seconds=0.001, extra=dict(self.options.extra.get(p.note_id, {}))))
        return out


def register_scripted() -> None:
    from icdreason.engines.registry import register

    register("scripted", "predict_support:ScriptedEngine")


def default_signals() -> None:
    """In a child the test signals: the default SIGINT and SIGTERM handling, whatever the test's shell ignores (a CI
    shell running jobs in the background ignores SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def kill_when(command: list[str], ready: Callable[[], Any], env: dict[str, str], *, seconds: float = 120) -> Any:
    """Start ``command``, SIGKILL it as soon as ``ready()`` returns something truthy (or at the deadline), and
    return what ``ready()`` last said. Fails unless the process died of that SIGKILL."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=default_signals)
    deadline = time.monotonic() + seconds
    seen = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            seen = ready()
            if seen:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    return seen
