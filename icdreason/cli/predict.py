"""``icdreason predict``: one reasoning trace and one ICD-10-CM code per admission note."""

# No `from __future__ import annotations` here: typer would compile every Annotated[...] string again each time it
# builds the command (several times per `icdreason --help`); evaluated once at import they cost nothing later.

import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..engines.base import SamplingParams, SharedOptions
from ..errors import UsageError
from ..settings import parse_assignments
from .cluster import CpusOption, DryRunOption, GpusOption, RayOption, ReplicasOption, print_plan, ray_plan
from .common import KbOption, cell, console, err_console, open_kb, renamed_flag, renamed_value, say, setting_flag

_STATUS_STYLE = {"billable": "green", "header": "yellow", "unknown": "red", "malformed": "red", "no_output": "red"}


def engine_options(cls, flags: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    """Engine options from the flags named like a shared option (:class:`SharedOptions`; unset ones are None) and
    ``-E KEY=VALUE`` pairs (strings, coerced by ``cls.Options.from_dict``). A flag the engine lacks is an error."""
    names = set(cls.Options.field_names())
    options: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None or value == []:
            continue
        flag = "--" + name.replace("_", "-")
        if name not in names:
            raise UsageError(f"{flag} does not apply to the {cls.name} engine")
        if isinstance(value, list) and cls.Options.type_label(name) != "a,b,c":
            if len(value) > 1:
                raise UsageError(f"the {cls.name} engine takes one {flag}")
            value = value[0]
        options[name] = value
    options.update(parse_assignments(extra, flag="--engine-option"))
    return options


def _share(record) -> str:
    """The code's vote share (LLM engines) or candidate share (the retriever), to two decimals; '-' when neither."""
    shares = record.confidence if record.confidence is not None else record.candidate_share
    value = (shares or {}).get("code")
    return "-" if value is None else f"{value:.2f}"


def _results_table(records: list) -> Table:
    table = Table(title=f"{len(records)} notes", title_justify="left")
    reasons = any(r.flags or r.error for r in records)
    # the retriever's share among its own candidates is not a vote: its column says so
    share = "vote share" if any(r.confidence is not None for r in records) or not records else "cand. share"
    for col, kw in (("id", {}), ("code", {}), ("status", {}), ("description", {"overflow": "fold"}),
                    (share, {"justify": "right"})):
        table.add_column(col, **kw)
    if reasons:
        table.add_column("flags / reason", overflow="fold")
    for r in records:
        row = [cell(r.id, single_line=True), cell(r.code or "-", single_line=True),
               cell(r.status, style=_STATUS_STYLE.get(r.status, "white")), cell(r.description or ""), _share(r)]
        if reasons:
            row.append(cell((", ".join(r.flags) + (f" {r.error}" if r.error else "")).strip()))
        table.add_row(*row)
    return table


def _summary_table(summary) -> Table:
    from ..codes import chapter_label

    table = Table(show_header=True)
    table.add_column(cell(f"run {summary.run_id}", single_line=True))
    table.add_column("count", justify="right")
    if summary.uses_llm:  # the answer's form, apart from the code's status
        table.add_row("answers well-formed", str(summary.well_formed))
        table.add_row("answers salvaged (code found, format failed)", str(summary.salvaged))
    for status in ("billable", "header", "unknown", "malformed", "no_output"):
        if summary.by_status.get(status):
            table.add_row(f"status {status}", str(summary.by_status[status]))
    chapters = sorted((k for k in summary.by_chapter if k != "-"), key=int)
    for ch in chapters:
        table.add_row(f"chapter {chapter_label(ch)}", str(summary.by_chapter[ch]))
    if summary.by_chapter.get("-"):
        table.add_row("no chapter", str(summary.by_chapter["-"]))
    for flag, count in sorted(summary.flags.items()):
        table.add_row(cell(f"flag {flag}"), str(count))
    if summary.skipped:
        table.add_row("skipped (already written)", str(summary.skipped))
    if summary.retried:
        table.add_row("predicted again (were errors)", str(summary.retried))
    table.add_row("engine", cell(summary.engine + (f" ({summary.model})" if summary.model else " (no language model)")))
    if summary.enrichment:
        table.add_row("enrichment", {"scraped": "scraped symptoms / guidelines",
                                     "tabular": "Tabular List notes only (nothing scraped)",
                                     "off": "off (--no-enrich)"}.get(summary.enrichment, summary.enrichment))
    table.add_row("notes predicted", str(summary.predicted))
    table.add_row("seconds", f"{summary.seconds:.2f}")
    table.add_row("notes/s", f"{summary.notes_per_second:.1f}")
    if summary.tokens_in or summary.tokens_out:
        table.add_row("tokens in / out", f"{summary.tokens_in} / {summary.tokens_out}")
    return table


def _progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]predict[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} notes/s"), TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
        console=err_console, transient=False,
    )


def predict(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(help="Note files (.txt), folders (walked recursively), globs, "
                                                "tables (.jsonl/.csv/.parquet) or - for stdin.", show_default=False)],
    engine: Annotated[Optional[str], typer.Option("--engine", "-e", help="retriever (no LLM), transformers, vllm or "
                      "openai. Default: retriever without --model; openai with --base-url; vllm when installed "
                      "with CUDA; else transformers.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="DeepICD-R1-7B, DeepICD-R1-zero-32B, any "
                     "hub id or a local directory.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Write records to FILE (.jsonl, .csv, "
                   ".parquet) or - for JSONL on stdout. Without it a table is printed.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="jsonl, csv or parquet (default: from --out's "
                   "extension).")] = None,
    db: Annotated[Optional[Path], typer.Option("--db", help="Also append records to the `predictions` table of this "
                  "DuckDB file and log the run in `runs`.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue --out/--db: skip note ids already "
                      "written.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    retry_errors: Annotated[bool, typer.Option("--retry-errors/--no-retry-errors", help="With --resume, predict "
                            "again the notes whose record is an error (a server or engine failure) and replace those "
                            "records.")] = True,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Name the run (default: time + random; on "
                      "--resume the run found in the output).")] = None,
    n: Annotated[int, setting_flag(SamplingParams, "n")] = 1,
    temperature: Annotated[Optional[float], setting_flag(SamplingParams, "temperature")] = None,
    top_p: Annotated[float, setting_flag(SamplingParams, "top_p")] = 1.0,
    max_new_tokens: Annotated[int, setting_flag(SamplingParams, "max_new_tokens")] = 1024,
    seed: Annotated[int, setting_flag(SamplingParams, "seed")] = 0,
    constrain: Annotated[bool, setting_flag(SamplingParams, "constrain")] = False,
    differential: Annotated[int, typer.Option("--differential", min=1, max=50, help="Differential codes kept per "
                            "note, with their support (the record's top_k list; not sampling top-k).")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Notes per engine call and per flush to "
                          "disk.")] = 32,
    max_note_chars: Annotated[int, typer.Option("--max-note-chars", min=0, help="Longer notes are cut in the middle "
                              "(head and tail kept, flagged). 0: never.")] = 8000,
    prompt_template: Annotated[Optional[Path], typer.Option("--prompt-template", help="A template file replacing the "
                               "prompt (see --show-prompt): icdreason's sectioned text or the DeepICD-R1 authors' "
                               "role,content CSV. Default: the model profile's prompt for DeepICD-R1-7B and "
                               "DeepICD-R1-zero-32B (fetched once, pinned by sha256), else icdreason's own "
                               "(deepicd_r1).")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Decoding preset; deepicd-r1-eval: as the "
                      "authors' evaluation (the model's generation-config sampling, 1,024 new tokens, prompts over "
                      "2,048 tokens skipped and flagged, notes not cut). Flags given win.")] = None,
    max_prompt_tokens: Annotated[Optional[int], typer.Option("--max-prompt-tokens", min=0, help="Prompts over this "
                                 "many tokens (the model's tokenizer) are skipped or flagged (--long-prompts). "
                                 "0: no limit (the default).")] = None,
    long_prompts: Annotated[Optional[str], typer.Option("--long-prompts", help="skip (the default: not generated, "
                            "the record says why) or flag (generated, flagged) prompts over "
                            "--max-prompt-tokens.")] = None,
    prompt_tokenizer: Annotated[Optional[str], typer.Option("--prompt-tokenizer", help="Tokenizer counting prompt "
                                "tokens for --max-prompt-tokens: a hub id or directory (default: the model's).")] = None,
    prefill: Annotated[Optional[str], typer.Option("--prefill", help="Text the answer starts with (default from the "
                       "template: '<think>'); '' for none.")] = None,
    show_prompt: Annotated[bool, typer.Option("--show-prompt", help="Print the prompt for the first note (or the "
                           "template) and exit.")] = False,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Id column of table inputs.")] = None,
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Text column of table inputs (also "
                           "makes - read JSONL).")] = None,
    keep_raw: Annotated[bool, typer.Option("--keep-raw", help="Store the raw model output in each record.")] = False,
    no_note: Annotated[bool, typer.Option("--no-note", help="Leave the note text out of the records.")] = False,
    no_enrich: Annotated[bool, typer.Option("--no-enrich", help="Skip symptom and guideline enrichment.")] = False,
    # Shared engine options (engines/base.py SharedOptions): each flag sets the engine option of the same name.
    base_url: Annotated[Optional[list[str]], setting_flag(SharedOptions, "base_url", metavar="URL")] = None,
    api_key_env: Annotated[Optional[str], setting_flag(SharedOptions, "api_key_env")] = None,
    concurrency: Annotated[Optional[int], setting_flag(SharedOptions, "concurrency")] = None,
    timeout: Annotated[Optional[float], setting_flag(SharedOptions, "timeout")] = None,
    retries: Annotated[Optional[int], setting_flag(SharedOptions, "retries")] = None,
    tensor_parallel_size: Annotated[Optional[int], setting_flag(SharedOptions, "tensor_parallel_size")] = None,
    gpu_memory_utilization: Annotated[Optional[float], setting_flag(SharedOptions, "gpu_memory_utilization")] = None,
    max_model_len: Annotated[Optional[int], setting_flag(SharedOptions, "max_model_len")] = None,
    dtype: Annotated[Optional[str], setting_flag(SharedOptions, "dtype")] = None,
    device: Annotated[Optional[str], setting_flag(SharedOptions, "device")] = None,
    engine_option: Annotated[Optional[list[str]], typer.Option("--engine-option", "-E", metavar="KEY=VALUE",
                             help="Any engine option (repeatable), e.g. -E batch_size=4; values are read as the "
                             "option's type (true/false, numbers, a,b,c lists, none).")] = None,
    ray: RayOption = None,
    replicas: ReplicasOption = 1,
    cpus_per_replica: CpusOption = None,
    gpus_per_replica: GpusOption = None,
    dry_run: DryRunOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    kb: KbOption = None,
    top_k: Annotated[Optional[int], renamed_flag("--differential", "--top-k", min=1, max=50)] = None,
) -> None:
    """Predict one ICD-10-CM code with a reasoning trace for every admission note.

    Without --model the embedded retriever runs (no language model, CPU only). Records are checked against the code
    table (billable / header / unknown / malformed / no_output) and written batch by batch; --resume continues a
    killed run without losing or duplicating records. With --ray generation runs on a Ray cluster (Ray Data; vLLM
    through ray.data.llm) and the records are the same.
    """
    from .. import DISCLAIMER
    from ..engines.registry import choose_engine, engine_class
    from ..interrupts import Terminated, sigterm_interrupts
    from ..notes import open_notes
    from ..predict import PredictSettings, run_predict, sampling_for
    from ..prompts import load_template

    differential = renamed_value(differential, top_k, default=5, new="--differential")
    if resume and overwrite:
        raise UsageError("--resume continues an output and --overwrite replaces it: give one of them")
    from ..models import find_profile

    profile = find_profile(model)
    if profile is not None and prompt_template is None:
        template = profile.template(prefill=prefill)
    else:
        template = load_template(prompt_template, prefill=prefill)
    notes = open_notes(inputs, id_column=id_column, text_column=text_column, stdin=sys.stdin.buffer)
    if show_prompt:
        _show_prompt(template, notes, max_note_chars)
        return
    name = choose_engine(engine, model=model, base_urls=base_url)
    cls = engine_class(name, check_requirements=ray is None)  # on Ray the workers need the engine's packages
    flags = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency, "timeout": timeout,
             "retries": retries, "tensor_parallel_size": tensor_parallel_size,
             "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len, "dtype": dtype,
             "device": device}  # SharedOptions, in its order
    options = cls.Options.from_dict(engine_options(cls, flags, engine_option or []))
    params = sampling_for(n, temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, constrain=constrain)
    if profile is not None:  # the profile's decoding defaults, under the flags given
        given = _given(ctx)
        params = replace(params, **{k: v for k, v in profile.decoding.items() if k not in given})
    settings = PredictSettings(top_k=differential, batch_size=batch_size, max_note_chars=max_note_chars, keep_raw=keep_raw,
                               include_note=not no_note, enrich=not no_enrich, retry_errors=retry_errors,
                               max_prompt_tokens=max_prompt_tokens or 0, long_prompts=long_prompts or "skip",
                               prompt_tokenizer=prompt_tokenizer)
    if preset:
        from ..predict_presets import apply_predict_preset

        params, settings, preset_notes = apply_predict_preset(preset, params=params, settings=settings,
                                                              explicit=_given(ctx), model=model)
        for line in preset_notes:
            say(line)
    plan = ray_plan(ray, cls, model, options, replicas=replicas, batch_size=batch_size,
                    cpus_per_replica=cpus_per_replica, gpus_per_replica=gpus_per_replica, dry_run=dry_run)
    if dry_run:
        print_plan(plan, notes=len(notes), options=options)
        return
    screen = err_console if out == "-" else console
    kept: list = []
    with open_kb(kb) as base:
        if not cls.uses_llm:
            say(f"engine: {name}. No language model is used: codes come from BM25 matching of the note against "
                "ICD-10-CM descriptions (a baseline; pass --model for DeepICD-R1).")
            if n > 1:
                say("the retriever is deterministic: --n is ignored")
        else:
            say(f"engine: {name}, model: {model}")
        if profile is not None:
            prompt = (f"prompt {profile.prompt.label} (sha256 {template.sha256[:12]}…)" if prompt_template is None
                      else f"prompt {template.name} (--prompt-template)")
            say(f"model profile {profile.name}: {prompt}, prefill {template.prefill!r}, answers {profile.answer_form}"
                + ("" if preset else f"; --preset {profile.eval_preset} decodes as the authors' evaluation"))
        with _engine(cls, model, options, base, plan, quiet=quiet) as eng:
            for line in eng.notices():
                say(line)
            progress = None if quiet or plan is not None else _progress()  # on Ray: Ray Data's progress bars
            task = None

            def on_progress(done: int, total: int) -> None:
                nonlocal task
                if progress is None:
                    return
                if task is None:
                    task = progress.add_task("predict", total=total, rate="-")
                elapsed = progress.tasks[task].elapsed or 0.0
                rate = f"{done / elapsed:.1f}" if elapsed > 0 and done else "-"
                progress.update(task, completed=done, total=total, rate=rate)

            command = shlex.join(sys.argv)
            if progress is not None:
                progress.start()
            try:
                with sigterm_interrupts():  # SIGTERM (kill, timeout, a scheduler) ends the run as Ctrl-C does
                    summary = run_predict(
                        notes, engine=eng, kb=base, out=out, fmt=fmt, db_path=str(db) if db else None,
                        resume=resume, overwrite=overwrite, run_id=run_id, params=params, template=template,
                        settings=settings, command=command, progress=on_progress,
                        on_records=kept.extend if out is None else None, stream=sys.stdout,
                        runner=_ray_runner() if plan is not None else None, notify=say,
                    )
            except KeyboardInterrupt as stop:
                if progress is not None:
                    progress.stop()
                    progress = None
                where = out if out not in (None, "-") else db
                terminated = isinstance(stop, Terminated)
                say(("terminated (SIGTERM)" if terminated else "interrupted")
                    + ": the batches written so far are kept"
                    + (f"; continue with the same command and --resume ({where})" if where else ""))
                raise typer.Exit(143 if terminated else 130) from None
            finally:
                if progress is not None:
                    progress.stop()
    if out is None:
        console.print(_results_table(kept))
    files = " and ".join(str(f) for f in (out if out not in (None, "-") else None, db) if f)
    if files:
        say(f"wrote {summary.predicted} records to {files}"
            + (f" ({summary.skipped} already there)" if summary.skipped else ""))
    if summary.retried:
        say(f"{summary.retried} notes whose records were errors predicted again (--no-retry-errors keeps such "
            "records)")
    if not quiet:
        table = _summary_table(summary)
        if plan is not None:
            table.add_row("ray", f"{plan.replicas} replica(s) x {plan.gpus_per_replica or 0:g} GPU(s) on {plan.address}"
                          + (f"; {eng.restarts} round(s) re-run after workers died" if eng.restarts else ""))
        screen.print(table)
    err_console.print(f"[dim]{DISCLAIMER}[/dim]")


def _given(ctx: typer.Context) -> set[str]:
    """The parameters set on the command line or by an environment variable (a preset does not override them)."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    # by name: typer may bring its own copy of click's ParameterSource enum
    return {name for name, source in sources.items() if getattr(source, "name", "") in ("COMMANDLINE", "ENVIRONMENT")}


def _engine(cls, model, options, kb, plan, *, quiet: bool):
    """The engine here, or (with --ray) its :class:`~icdreason.cluster.RayEngine`, which connects to the cluster."""
    if plan is None:
        return cls(model, options, kb)
    from ..cluster import RayEngine

    say(f"on Ray ({plan.address}): {plan.replicas} replica(s) of {cls.name} through the {plan.runner}")
    return RayEngine(cls, model, options, kb, plan, progress_bars=not quiet)


def _ray_runner():
    from ..cluster import predict_on_ray

    return predict_on_ray


def _show_prompt(template, notes, max_note_chars: int) -> None:
    from ..notes import truncate_middle
    from ..prompts import neutralize_note

    note = next((n for n in notes if not n.problem), None)
    text = "{note}" if note is None else neutralize_note(truncate_middle(note.text, max_note_chars)[0])[0]
    prompt = template.render(note.id if note else "-", text)
    for message in prompt.messages:
        console.rule(message["role"])
        console.print(cell(message["content"]))
    console.rule("assistant (prefill)")
    console.print(cell(prompt.prefill))
    console.print(cell(f"template {template.name} sha256 {template.sha256}", style="dim"))
    if template.source and template.source != template.name:
        console.print(cell(f"source {template.source}", style="dim"))
