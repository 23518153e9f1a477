""":class:`RayEngine`: the driver's face of an engine that generates on a Ray cluster.

It has the inner engine's name, model and capabilities, so records and the run log read as a local run's. Its
:meth:`RayEngine.stream` turns the prompts into a Ray Dataset and hands it to

- an **actor pool** of the engine class itself (``--replicas`` actors, each building the engine once), for the
  retriever, the transformers engine and any registered engine; or
- **ray.data.llm's vLLM processor** for ``--engine vllm`` (:mod:`icdreason.cluster.vllm_processor`),

and yields ``(prompt, generation)`` pairs as Ray delivers them (in any order).

Failures: an error on one note is that note's error (the engine's own handling, as locally). A worker process that
dies (a segfault, the OOM killer, a lost node) is restarted by Ray and its batch retried, at most
:data:`~icdreason.cluster.plan.MAX_RETRIES` times. When that is exhausted, the notes not yet delivered are run again:
the batch that kept killing its worker one note at a time, so that the note responsible is found (a
:class:`~icdreason.cluster.workers.Ledger` counts the attempts) and gets an error record saying so; the rest go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

from ..engines.base import Engine, EngineOptions, Generation, Prompt, SamplingParams
from ..errors import EngineError
from .connect import ray_session
from .failures import capped_restarts, first_line, library_error, worker_lost
from .plan import RayPlan

__all__ = ["RayEngine"]

#: Rounds of re-running after worker deaths that found nothing new, before the run stops.
_MAX_IDLE_ROUNDS = 2


class RayEngine(Engine):
    """An engine class run on Ray (see the module docstring). Connects on construction; :meth:`close` disconnects
    (and stops a Ray this engine started)."""

    def __init__(self, engine_cls: type[Engine], model: str | None, options: EngineOptions | None, kb,
                 plan: RayPlan, *, progress_bars: bool = True):
        super().__init__(model, options if options is not None else engine_cls.Options(), kb)
        self.inner = engine_cls
        self.name = engine_cls.name  # type: ignore[misc]
        self.uses_llm = engine_cls.uses_llm  # type: ignore[misc]
        self.supports_constrain = engine_cls.supports_constrain  # type: ignore[misc]
        self.supports_sampling = engine_cls.supports_sampling  # type: ignore[misc]
        self.plan = plan
        self._session = ExitStack()
        try:
            if plan.runner == "vllm processor":
                from .vllm_processor import check_driver

                check_driver()
            resources = self._session.enter_context(ray_session(plan.address, progress_bars=progress_bars))
            plan.resolve(resources)
            plan.check(resources)
        except BaseException:
            self._session.close()
            raise
        self.restarts = 0  # rounds re-run after a worker died for good

    # -- the protocol ----------------------------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """One generation per prompt, in order (a whole Ray pipeline per call: use :meth:`stream` for many)."""
        got = {id(p): g for pairs in self.stream(prompts, params, batch_size=self.plan.batch_size) for p, g in pairs}
        return [got[id(p)] for p in prompts]

    def stream(self, prompts: Iterable[Prompt], params: SamplingParams, *,
               batch_size: int = 32) -> Iterator[list[tuple[Prompt, Generation]]]:
        """Generate on Ray; yield ``(prompt, generation)`` pairs as they arrive, every prompt exactly once."""
        items = list(prompts)
        if not items:
            return
        if self.plan.runner == "vllm processor":
            from .vllm_processor import vllm_stream

            yield from vllm_stream(self, items, params, batch_size)
        else:
            yield from self._pool_stream(items, params, batch_size)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model, "options": dataclasses.asdict(self.options),
                "ray": self.plan.to_dict()}

    def close(self) -> None:
        self._session.close()

    # -- the actor pool --------------------------------------------------------------------------------------------
    def worker_options(self) -> EngineOptions:
        """The options the workers build the engine with: ``device=auto`` becomes ``cpu`` on replicas that were
        given no GPU, so that actors never share a GPU Ray did not give them."""
        opts = self.options
        if not self.plan.gpus_per_replica and getattr(opts, "device", None) == "auto":
            opts = dataclasses.replace(opts, device="cpu")  # type: ignore[type-var]
        return opts

    def _pool_stream(self, items: list[Prompt], params: SamplingParams,
                     batch_size: int) -> Iterator[list[tuple[Prompt, Generation]]]:
        import ray

        from .workers import Ledger

        pending: dict[int, Prompt] = dict(enumerate(items))
        suspects: set[int] = set()
        idle = 0
        ledger = ray.remote(Ledger).options(num_cpus=0).remote()
        try:
            while pending:
                ray.get(ledger.reset.remote())
                size = batch_size
                found = False
                try:
                    for seqs, size in (([s for s in pending if s in suspects], 1),
                                       ([s for s in pending if s not in suspects], batch_size)):
                        for out in self._run_pool(seqs, pending, size, params, ledger):
                            pairs = [(pending.pop(seq), gen) for seq, gen in out if seq in pending]
                            if pairs:
                                found = True
                                yield pairs
                except Exception as exc:  # noqa: BLE001 - sorted below
                    if not worker_lost(exc):
                        raise library_error(exc) from None
                    counts = ray.get(ledger.counts.remote())
                    unfinished = {s: c for s, c in counts.items() if s in pending}
                    given_up = [s for s, c in unfinished.items() if c > self.plan.max_retries]
                    why = first_line(exc)
                    if size == 1 and given_up:
                        yield [(pending.pop(s), Generation(texts=[], error=(
                            f"the Ray worker died on this note {counts[s]} times ({why}); given up")))
                            for s in given_up]
                        found = True
                    else:
                        new = set(given_up or unfinished) - suspects
                        suspects |= new
                        found = found or bool(new)
                    self.restarts += 1
                    idle = 0 if found else idle + 1
                    if idle > _MAX_IDLE_ROUNDS:
                        raise EngineError(f"Ray workers keep dying ({why}): rerun with --resume, or see the Ray "
                                          "logs (ICDREASON_DEBUG=1 shows them)") from None
        finally:
            ray.kill(ledger)

    def _run_pool(self, seqs: list[int], pending: dict[int, Prompt], size: int, params: SamplingParams,
                  ledger) -> Iterator[list[tuple[int, Generation]]]:
        if not seqs:
            return
        import ray

        from .workers import EngineWorker, blocks_for, load_generation, prompt_rows

        plan = self.plan
        kb_path = str(self.kb.path) if self.kb is not None and getattr(self.kb, "path", None) else None
        ds = ray.data.from_items(prompt_rows([pending[s] for s in seqs], seqs),
                                 override_num_blocks=blocks_for(len(seqs), size, plan.replicas))
        with capped_restarts():
            ds = ds.map_batches(
                EngineWorker, fn_constructor_kwargs={"engine_cls": self.inner, "model": self.model,
                                                     "options": self.worker_options(), "params": params,
                                                     "kb_path": kb_path, "ledger": ledger},
                compute=ray.data.ActorPoolStrategy(size=plan.replicas), num_cpus=plan.cpus_per_replica,
                num_gpus=plan.gpus_per_replica or 0, batch_size=size, batch_format="numpy",
                max_restarts=plan.max_retries, max_task_retries=plan.max_retries)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield [(int(seq), load_generation(blob)) for seq, blob in zip(batch["seq"], batch["generation"])]

