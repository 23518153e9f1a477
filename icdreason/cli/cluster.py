"""The ``--ray`` options that ``predict`` and ``distill`` share, and the plan ``--dry-run`` prints."""

# No `from __future__ import annotations` here (see cli/predict.py).

from typing import Annotated, Any, Optional

import typer

from ..errors import UsageError
from .common import console, say

RayOption = Annotated[Optional[str], typer.Option(
    "--ray", metavar="local|auto|HOST:PORT",
    help="Generate on a Ray cluster through Ray Data: local (a new Ray on this machine), auto (the cluster of this "
         "node, or $RAY_ADDRESS as inside `ray job submit`) or the head's HOST:6379. Needs the ray extra: "
         "pip install '.\\[ray]' in the icdreason checkout.")]
ReplicasOption = Annotated[int, typer.Option("--replicas", min=1, help="With --ray: copies of the engine working in "
                                             "parallel (data parallel; a vLLM replica spans --tensor-parallel-size "
                                             "GPUs).")]
CpusOption = Annotated[Optional[float], typer.Option("--cpus-per-replica", min=0.01, help="With --ray: CPUs each "
                                                     "replica reserves (default 1).")]
GpusOption = Annotated[Optional[float], typer.Option("--gpus-per-replica", min=0, help="With --ray: GPUs each "
                                                     "replica reserves (vllm: --tensor-parallel-size; transformers: "
                                                     "1 with --device cuda, with --device auto 1 when the cluster "
                                                     "has one per replica; else 0).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="With --ray: print the Ray plan (address, replicas, "
                                            "GPUs and CPUs per replica, batch size) and start nothing.")]


def ray_plan(ray: Optional[str], engine_cls, model: Optional[str], options, *, replicas: int, batch_size: int,
             cpus_per_replica: Optional[float], gpus_per_replica: Optional[float], dry_run: bool):
    """The Ray plan of a command's flags, or None without --ray (then the Ray-only flags are an error). A run that
    is not a dry run needs Ray here: without it, one line says how to install it."""
    if ray is None:
        used = [flag for flag, value in (("--replicas", replicas != 1), ("--cpus-per-replica", cpus_per_replica),
                                         ("--gpus-per-replica", gpus_per_replica), ("--dry-run", dry_run)) if value]
        if used:
            raise UsageError(f"{', '.join(used)} only apply with --ray")
        return None
    from ..cluster import parse_address, plan_for, require_ray

    plan = plan_for(engine_cls, model, options, address=parse_address(ray), replicas=replicas,
                    batch_size=batch_size, cpus_per_replica=cpus_per_replica, gpus_per_replica=gpus_per_replica)
    if not dry_run:
        require_ray()  # before the knowledge base is opened (or built)
    return plan


def print_plan(plan, *, options, notes: Optional[int] = None) -> None:
    """The ``--dry-run`` report: one YAML document on stdout (the plan, the vLLM processor's config when Ray can
    build it here), a note on stderr when Ray is missing here."""
    import yaml

    from ..cluster import RAY_INSTALL_HINT, ray_installed

    doc: dict[str, Any] = {"ray": plan.to_dict()}
    if notes is not None:
        doc["notes"] = notes
    if plan.runner == "vllm processor" and ray_installed():
        from ..cluster.vllm_processor import processor_config

        try:
            config = processor_config(plan.model, options, plan, batch_size=plan.batch_size).model_dump()
        except ImportError as exc:
            say(f"note: cannot build the ray.data.llm config here ({exc})")
        else:
            keys = ("model_source", "engine_kwargs", "concurrency", "batch_size", "chat_template_stage",
                    "tokenize_stage", "detokenize_stage", "should_continue_on_error")
            doc["vllm_processor"] = {k: _plain(config.get(k)) for k in keys}
    console.print(yaml.safe_dump(doc, sort_keys=False, width=1_000_000), markup=False, soft_wrap=True)
    if not ray_installed():
        say(f"note: {RAY_INSTALL_HINT}")
    if notes and plan.batch_size > notes:
        say(f"note: --batch-size {plan.batch_size} is larger than the {notes} note(s): they make one batch"
            + (f", so {plan.replicas - 1} of the {plan.replicas} replicas get no work" if plan.replicas > 1 else ""))
    say("dry run: nothing was started")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
