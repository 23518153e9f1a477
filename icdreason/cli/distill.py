"""``icdreason distill``: reasoning traces for SFT from a teacher model (paper section 3.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .cluster import CpusOption, DryRunOption, GpusOption, RayOption, ReplicasOption, print_plan, ray_plan
from .common import KbOption, cell, console, disclaimer, err_console, open_kb, say


def distill(
    data: Annotated[Path, typer.Argument(help="Notes with gold codes: the RL Parquet of `icdreason data prepare` "
                                              "(or JSONL/CSV/Parquet with id, note, code).")],
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher model: a local path or hub id (transformers, "
                                                           "vllm) or the served model name (openai).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="SFT Parquet to write (trl conversational layout).")] = Path(
        "sft_traces.parquet"),
    engine: Annotated[Optional[str], typer.Option(help="Engine: transformers, vllm or openai (default: openai with "
                                                       "--base-url, vllm with CUDA, else transformers).")] = None,
    base_url: Annotated[Optional[list[str]], typer.Option("--base-url", help="OpenAI-compatible server URL.")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable with the server's API key.")] = None,
    engine_option: Annotated[Optional[list[str]], typer.Option("--engine-option", "-E",
                                                               help="Engine option KEY=VALUE (repeatable).")] = None,
    min_words: Annotated[int, typer.Option(help="Shortest trace kept, in words (paper: 31).")] = 31,
    max_words: Annotated[int, typer.Option(help="Longest trace kept, in words (paper: 883).")] = 883,
    n: Annotated[int, typer.Option(help="Samples per note; the first valid one is kept.")] = 1,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (default 0, or 0.9 with --n > 1)."
                                                         )] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest teacher answer in tokens.")] = 1536,
    batch_size: Annotated[int, typer.Option(help="Notes per engine call and per progress flush.")] = 16,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N notes.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only rows of this split (train, validation, test).")] = None,
    allow_early_code: Annotated[bool, typer.Option("--allow-early-code", help="Keep traces that name the code "
                                                                              "before their last fifth.")] = False,
    prompt_template: Annotated[Optional[str], typer.Option(help="Student prompt template written into the SFT file "
                                                                "(default: the bundled DeepICD-R1 prompt).")] = None,
    ray: RayOption = None,
    replicas: ReplicasOption = 1,
    cpus_per_replica: CpusOption = None,
    gpus_per_replica: GpusOption = None,
    dry_run: DryRunOption = False,
    kb: KbOption = None,
) -> None:
    """Generate reasoning traces that reach each note's gold code, keep the valid ones and write trl SFT Parquet;
    resumable (a progress log sits next to --out). Prints the paper's Table 2 statistics. With --ray the teacher
    runs on a Ray cluster."""
    from rich.table import Table

    from ..distill import DistillOptions
    from ..distill import distill as run_distill
    from ..engines.registry import choose_engine, engine_class
    from ..predict import build_engine
    from .predict import engine_options

    opts = DistillOptions(data=data, out=out, min_words=min_words, max_words=max_words, n=n, temperature=temperature,
                          max_new_tokens=max_new_tokens, batch_size=batch_size, limit=limit, split=split,
                          allow_early_code=allow_early_code, prompt_template=prompt_template)
    name = choose_engine(engine, model=teacher, base_urls=base_url)
    cls = engine_class(name, check_requirements=ray is None)  # on Ray the workers need the engine's packages
    options = engine_options(cls, {"base_url": base_url, "api_key_env": api_key_env}, engine_option or [])
    checked = cls.Options.from_dict(options)
    plan = ray_plan(ray, cls, teacher, checked, replicas=replicas, batch_size=batch_size,
                    cpus_per_replica=cpus_per_replica, gpus_per_replica=gpus_per_replica, dry_run=dry_run)
    if plan is not None and dry_run:
        print_plan(plan, options=checked)
        return
    base = open_kb(kb)
    from ..kb.enrich import enrichment_notice

    notice = enrichment_notice(base)
    if notice:  # the teacher's prompts get the Tabular List's notes instead of symptoms and guidelines
        say(notice)
    if plan is None:
        teacher_engine = build_engine(name, teacher, options, kb=base, base_urls=base_url)
    else:
        from ..cluster import RayEngine

        say(f"on Ray ({plan.address}): {plan.replicas} replica(s) of the {name} teacher through the {plan.runner}")
        teacher_engine = RayEngine(cls, teacher, checked, base, plan)
    with teacher_engine:
        result = run_distill(opts, teacher_engine, base,
                             progress=lambda done, seen: err_console.print(f"  {done:,} of {seen:,} notes done",
                                                                           highlight=False))
    s = result.stats
    table = Table(title="SFT dataset (paper Table 2: 93,142 samples, 6,368 codes, 477.3 words, 31 / 883)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("Samples", f"{s['samples']:,}")
    table.add_row("Unique codes", f"{s['unique_codes']:,}")
    table.add_row("Mean trace length", f"{s['mean_words']:.1f} words")
    table.add_row("Min / Max trace length", f"{s['min_words']} / {s['max_words']} words")
    console.print(table)
    rejected = Table(title=f"Notes processed: {s['processed']:,}; kept {s['samples']:,}")
    rejected.add_column("rejected because")
    rejected.add_column("notes", justify="right")
    for why, count in s["rejected"].items():
        rejected.add_row(cell(why), f"{count:,}")
    console.print(rejected)
    console.print(cell(f"written to {result.out}"))
    disclaimer()
