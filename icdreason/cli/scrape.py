"""``icdreason scrape``: symptom descriptions and the official coding guidelines into the knowledge base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import KbOption, cell, console, err_console, say

app = typer.Typer(help="Scrape symptom descriptions and coding guidelines into the knowledge base.",
                  no_args_is_help=True)


def _open_writable(kb: Path | None):
    from ..kb import KnowledgeBase

    return KnowledgeBase.open(kb, read_only=False, progress=say)


def _progress(description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                    TimeRemainingColumn(), console=err_console, transient=False)


def _print_summary(summary, as_json: bool) -> None:
    from rich.table import Table

    if as_json:
        console.print_json(json.dumps(summary.to_dict()))
        return
    table = Table(title=cell(f"scrape symptoms --source {summary.source}"), show_header=False)
    table.add_row("codes selected", f"{summary.codes:,}")
    table.add_row("already done (skipped)", f"{summary.already:,}")
    table.add_row("pages this run", f"{summary.pages:,}")
    table.add_row("pages fetched", f"{summary.fetched:,}")
    table.add_row("descriptions stored", f"{summary.stored:,}")
    table.add_row("HTTP requests", f"{summary.requests:,}")
    for label, counts in (("not found", summary.not_found), ("skipped", summary.skipped), ("failed", summary.failed)):
        for reason, n in sorted(counts.items()):
            table.add_row(cell(f"{label}: {reason}"), f"{n:,}")
    console.print(table)
    if summary.failed:
        say("failed pages are tried again by the next run (stored and answered pages are skipped)")


@app.command("symptoms")
def symptoms(
    source: Annotated[str, typer.Option("--source", help="gesund (gesund.bund.de, German; the paper's source) or "
                                        "medlineplus (MedlinePlus Connect, English).")],
    codes: Annotated[Optional[Path], typer.Option("--codes", help="A text file of ICD-10-CM codes (one or more per "
                                                  "line, # comments).")] = None,
    chapter: Annotated[Optional[int], typer.Option("--chapter", min=1, max=22, help="Every category and "
                                                   "subcategory (up to 5 characters) of one chapter.")] = None,
    all_codes: Annotated[bool, typer.Option("--all", help="Every category and subcategory up to 5 characters; "
                                            "longer codes inherit through the hierarchy.")] = False,
    from_dir: Annotated[Optional[Path], typer.Option("--from-dir", help="Parse saved pages (a wget mirror, saved "
                                                     "JSON answers) instead of fetching.")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch again what earlier runs stored or answered.")] = False,
    rate: Annotated[float, typer.Option("--rate", min=0.01, help="Requests per second per host.")] = 1.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=16, help="Requests in flight at once.")] = 2,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per request in all (a deadline, "
                                           "however slowly a server answers).")] = 20.0,
    retries: Annotated[int, typer.Option("--retries", min=0, max=10, help="Extra attempts on 429/5xx/timeouts "
                                         "(exponential backoff, Retry-After honoured).")] = 3,
    backoff: Annotated[float, typer.Option("--backoff", min=0.0, help="First backoff in seconds (doubles per "
                                           "retry).")] = 1.0,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="Another address for the source (a mirror "
                                                    "or a test server).")] = None,
    kb: KbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Fetch plain-language symptom descriptions per code into the knowledge base's symptoms table."""
    from ..errors import UsageError
    from ..scrape import FetchOptions, get_source, read_codes_file, scrape_from_dir, scrape_symptoms, select_codes

    src = get_source(source, base_url)
    with _open_writable(kb) as base, _progress(f"{source}") as bar:
        task = bar.add_task("pages", total=None, last="")

        def on_plan(n: int) -> None:
            bar.update(task, total=n)

        def on_page(key: str, outcome: str) -> None:
            bar.update(task, advance=1, last=f"{key}: {outcome}")

        if from_dir is not None:
            if codes or chapter or all_codes:
                raise UsageError("--from-dir parses every saved page: leave out --codes/--chapter/--all")
            summary = scrape_from_dir(base, src, from_dir, refresh=refresh, on_plan=on_plan, on_page=on_page)
        else:
            selected, unknown = select_codes(
                base, codes=read_codes_file(codes) if codes else None, chapter=chapter, all_codes=all_codes
            )
            for raw in unknown:
                say(f"skipping {raw!r}: not a code of the knowledge base")
            options = FetchOptions(rate=rate, timeout=timeout, retries=retries, backoff=backoff)
            summary = scrape_symptoms(base, src, selected, options=options, concurrency=concurrency,
                                      refresh=refresh, on_plan=on_plan, on_page=on_page)
            if unknown:
                summary.skipped["unknown_code"] += len(unknown)
    _print_summary(summary, as_json)
    if summary.interrupted:
        say("interrupted: what was stored is kept; run the same command again to go on")
        raise typer.Exit(130)


@app.command("guidelines")
def guidelines(
    pdf: Annotated[Optional[Path], typer.Option("--pdf", help="The CMS ICD-10-CM Official Guidelines for Coding and "
                                                "Reporting PDF.")] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="Download the PDF from this address first (e.g. "
                                               "https://www.cms.gov/files/document/fy-2025-icd-10-cm-coding-"
                                               "guidelines.pdf).")] = None,
    export_json: Annotated[Optional[Path], typer.Option("--export-json", help="Also write nested chapter_N.json "
                                                        "(chapter title → heading → … → text) per chapter, and "
                                                        "sections.json for the rest, into this folder.")] = None,
    kb: KbOption = None,
) -> None:
    """Parse the official coding guidelines into the knowledge base's guidelines table (section tree)."""
    from ..errors import InputError, UsageError
    from ..scrape import FetchOptions, PoliteFetcher, export_json as write_json, parse_pdf, rows_from_sections
    from ..scrape import store_rows

    if (pdf is None) == (url is None):
        raise UsageError("give the guidelines as exactly one of --pdf FILE or --url URL")
    if pdf is not None:
        if not pdf.is_file():
            raise InputError(f"{pdf} does not exist: pass the path of the downloaded guidelines PDF")
        say(f"Parsing {pdf} …")
        sections, origin = parse_pdf(pdf), str(pdf)
    else:
        say(f"Downloading {url} …")
        from ..scrape.limits import MAX_DOCUMENT_BYTES

        with PoliteFetcher(FetchOptions(timeout=120.0, max_bytes=MAX_DOCUMENT_BYTES)) as fetcher:
            result = fetcher.fetch(url)
        if not result.ok or not result.content:
            raise InputError(f"could not download {url} ({result.reason or 'empty answer'}): download it yourself "
                             "and pass --pdf FILE")
        sections, origin = parse_pdf(result.content), url
    rows_to_store = rows_from_sections(sections)
    with _open_writable(kb) as base:
        rows = store_rows(base, rows_to_store, origin)
    chapters = sorted({s.chapter for s in sections if s.chapter is not None})
    say(f"Stored {rows} guideline sections ({len(chapters)} chapter-specific parts: "
        f"{', '.join(f'I.C.{c}' for c in chapters[:3])}{' …' if len(chapters) > 3 else ''})")
    if export_json is not None:
        files = write_json(rows_to_store, export_json)
        say(f"Wrote {len(files)} JSON files to {export_json}")
