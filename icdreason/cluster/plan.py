"""The plan of a ``--ray`` run: where it runs, how many replicas, what each replica asks Ray for.

:func:`plan_for` derives it from the engine and its options without touching Ray (``--dry-run`` prints
:meth:`RayPlan.to_dict`); :meth:`RayPlan.check` compares it with a cluster's resources before anything starts,
because a pipeline whose actors cannot be placed (a vLLM replica on a GPU-less cluster) waits forever instead of
failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DependencyError, UsageError

__all__ = ["RayPlan", "plan_for", "MAX_RETRIES"]

#: How often Ray restarts a replica that died and retries the batch it held, before the note is given up.
MAX_RETRIES = 3


@dataclass
class RayPlan:
    """What a ``--ray`` run asks the cluster for."""

    address: str  # local | auto | HOST:PORT
    engine: str
    model: str | None
    runner: str  # "vllm processor" (ray.data.llm) or "actor pool" (our engine class on Ray actors)
    replicas: int = 1  # data-parallel copies of the engine
    gpus_per_replica: float | None = 0  # None: decided when connected (1 when the cluster has a GPU per replica)
    cpus_per_replica: float = 1.0
    tensor_parallel_size: int = 1  # vLLM: GPUs one replica is split over
    batch_size: int = 32  # rows per Ray batch (and per engine call)
    max_retries: int = MAX_RETRIES

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise UsageError("--replicas must be at least 1")
        if self.cpus_per_replica <= 0:
            raise UsageError("--cpus-per-replica must be more than 0")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")

    @property
    def gpus(self) -> float:
        """GPUs the whole run takes (replicas x GPUs per replica; 0 while undecided)."""
        return self.replicas * (self.gpus_per_replica or 0)

    def resolve(self, resources: Mapping[str, float]) -> RayPlan:
        """Decide an automatic GPU count from the cluster's resources: one GPU per replica when there are enough."""
        if self.gpus_per_replica is None:
            self.gpus_per_replica = 1 if resources.get("GPU", 0) >= self.replicas else 0
        return self

    def check(self, resources: Mapping[str, float]) -> None:
        """Raise a one-line :class:`DependencyError` when the cluster cannot place every replica."""
        have_gpus, have_cpus = resources.get("GPU", 0), resources.get("CPU", 0)
        if self.gpus > have_gpus:
            raise DependencyError(
                f"the Ray cluster ({self.address}) has {have_gpus:g} GPU(s) but the plan needs {self.gpus:g} "
                f"({self.replicas} replica(s) x {self.gpus_per_replica:g}): lower --replicas or "
                f"--tensor-parallel-size, or add GPU nodes")
        if self.replicas * self.cpus_per_replica > have_cpus:
            raise DependencyError(
                f"the Ray cluster ({self.address}) has {have_cpus:g} CPU(s) but the plan needs "
                f"{self.replicas * self.cpus_per_replica:g} ({self.replicas} replica(s) x {self.cpus_per_replica:g}):"
                " lower --replicas or --cpus-per-replica")

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain values (``--dry-run`` prints it; the run log keeps it)."""
        out = asdict(self)
        out["gpus_per_replica"] = "auto (1 when the cluster has a GPU per replica)" if self.gpus_per_replica is None \
            else self.gpus_per_replica
        out["gpus_total"] = self.gpus if self.gpus_per_replica is not None else "auto"
        return out


def plan_for(engine_cls, model: str | None, options, *, address: str, replicas: int = 1, batch_size: int = 32,
             cpus_per_replica: float | None = None, gpus_per_replica: float | None = None) -> RayPlan:
    """The plan for an engine class and its options: vLLM runs through ``ray.data.llm`` with ``tensor_parallel_size``
    GPUs per replica; other engines run as an actor pool, the transformers engine with one GPU per replica when
    ``--device`` asks for CUDA (``auto``: when the cluster has one per replica), the others on CPUs."""
    name = engine_cls.name
    tp = int(getattr(options, "tensor_parallel_size", 1) or 1)
    if name == "vllm":
        runner = "vllm processor"
        if gpus_per_replica is not None and gpus_per_replica != tp:
            raise UsageError(f"a vLLM replica takes --tensor-parallel-size GPUs ({tp}); set that instead of "
                             "--gpus-per-replica")
        gpus: float | None = tp
    else:
        runner = "actor pool"
        gpus = gpus_per_replica
        if gpus is None:
            device = str(getattr(options, "device", "cpu") or "cpu")
            gpus = 1 if device.startswith("cuda") else None if device == "auto" and engine_cls.uses_llm else 0
    return RayPlan(address=address, engine=name, model=model, runner=runner, replicas=replicas,
                   gpus_per_replica=gpus, cpus_per_replica=1.0 if cpus_per_replica is None else cpus_per_replica,
                   tensor_parallel_size=tp if name == "vllm" else 1, batch_size=batch_size)
