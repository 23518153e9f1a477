"""What runs on the Ray workers of an actor-pool run: one engine per actor, and a ledger of attempts.

:class:`EngineWorker` is the callable class Ray Data instantiates once per actor (``map_batches(EngineWorker,
compute=ActorPoolStrategy(size=replicas))``): it builds our engine (loading the model or the retriever index) once,
and turns each batch of prompt rows into generation rows. A failure on one note becomes that note's error; only an
error that every note of a batch shares (weights missing, a server down) stops the run, as it does locally.

:class:`Ledger` (a tiny Ray actor) counts how often each row was started. A row that was started more often than Ray
retries a dead worker, alone in its batch, is the one that kills the worker: the driver records it as an error and
goes on (see :mod:`icdreason.cluster.engine`).

Rows travel as plain columns: ``seq`` (the prompt's position), ``note_id``, ``note``, ``messages`` (JSON) and
``prefill`` in; ``seq`` and ``generation`` (the pickled :class:`~icdreason.engines.base.Generation`) out.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from ..engines.base import Generation, Prompt, SamplingParams

__all__ = ["EngineWorker", "Ledger", "blocks_for", "prompt_rows", "row_prompt", "load_generation"]


def prompt_rows(prompts: list[Prompt], seqs: list[int]) -> list[dict[str, Any]]:
    """The rows of a Ray Dataset for these prompts (``seqs``: their positions in the run)."""
    return [{"seq": seq, "note_id": p.note_id, "note": p.note, "messages": json.dumps(p.messages),
             "prefill": p.prefill} for seq, p in zip(seqs, prompts)]


def blocks_for(rows: int, batch_size: int, replicas: int) -> int:
    """Blocks to cut ``rows`` prompt rows into: about one batch each (results come back, and are written, a batch at a
    time), and at least one per replica so that every replica has work."""
    return max(1, min(rows, max(replicas, -(-rows // batch_size))))


def row_prompt(row: dict[str, Any]) -> Prompt:
    """A prompt row back as a :class:`Prompt`."""
    return Prompt(note_id=str(row["note_id"]), note=str(row["note"]), messages=json.loads(row["messages"]),
                  prefill=str(row["prefill"]))


def load_generation(blob: bytes) -> Generation:
    """A ``generation`` cell back as a :class:`Generation`."""
    gen = pickle.loads(blob)
    if not isinstance(gen, Generation):
        raise TypeError(f"expected a Generation, got {type(gen).__name__}")
    return gen


def _columns_to_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    names = list(batch)
    size = len(batch[names[0]]) if names else 0
    return [{name: batch[name][i] for name in names} for i in range(size)]


class EngineWorker:
    """One replica of an engine on a Ray actor (see the module docstring)."""

    def __init__(self, engine_cls, model: str | None, options, params: SamplingParams, kb_path: str | None,
                 ledger=None):
        self.params = params
        self.ledger = ledger
        self.kb = _open_kb(kb_path)
        self.engine = engine_cls(model, options, self.kb)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from ..predict import generate_batch

        rows = _columns_to_rows(batch)
        seqs = [int(row["seq"]) for row in rows]
        if self.ledger is not None:
            import ray

            ray.get(self.ledger.begin.remote(seqs))
        gens = generate_batch(self.engine, [row_prompt(row) for row in rows], self.params)
        return {"seq": seqs, "generation": [pickle.dumps(g, protocol=pickle.HIGHEST_PROTOCOL) for g in gens]}

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - the actor is going away
                pass


def _open_kb(path: str | None):
    """The driver's knowledge base when this node has it at the same path, else this node's own (``$ICDREASON_KB``
    or the per-user data directory), else None (engines that need one open or report it themselves)."""
    from ..errors import IcdreasonError
    from ..kb import KnowledgeBase

    for candidate in (path, None):
        try:
            return KnowledgeBase.open(candidate, build_if_missing=False)
        except IcdreasonError:
            continue
    return None


class Ledger:
    """Counts how often each row was started in the current round (a Ray actor; see the module docstring)."""

    def __init__(self) -> None:
        self.started: dict[int, int] = {}

    def reset(self) -> None:
        self.started.clear()

    def begin(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.started[seq] = self.started.get(seq, 0) + 1

    def counts(self) -> dict[int, int]:
        return dict(self.started)
