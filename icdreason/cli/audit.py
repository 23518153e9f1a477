"""``icdreason audit``: expert review of predictions — an interactive session, offline imports, the report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import UsageError
from .common import KbOption, cell, console, disclaimer, err_console, markup, open_kb, say

app = typer.Typer(help="Expert review of predictions: accept, correct or reject each case; agreement and reports.",
                  no_args_is_help=True)

DbOption = Annotated[Path, typer.Option("--db", help="The audit database (DuckDB); created by the first `start`.")]
PredictionsArgument = Annotated[Path, typer.Argument(help="Predictions file (JSONL, CSV, Parquet or DuckDB) from "
                                                     "`icdreason predict`.")]
SampleOption = Annotated[Optional[int], typer.Option("--sample", min=1, help="Review N cases (default: all). Drawn "
                                                     "once, when the audit starts.")]
StrategyOption = Annotated[str, typer.Option("--strategy", help="How to draw --sample: random, low-confidence, "
                                             "per-chapter or disagreement.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the sample.")]
BlindOption = Annotated[bool, typer.Option("--blind", help="Enter your own code before the model's is shown (for "
                                           "unbiased model-vs-expert agreement).")]
_REVIEWER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _reviewer(name: str) -> str:
    if not _REVIEWER.match(name):
        raise UsageError(f"reviewer {name!r}: use letters, digits and . _ @ - (e.g. --reviewer jdoe)")
    return name


def _print_rejected(rejected) -> None:
    table = Table(title=f"{len(rejected)} rejected row(s)")
    for col in ("line", "case", "reviewer", "why"):
        table.add_column(col)
    for r in rejected:
        table.add_row(str(r.line), cell(r.case_id, single_line=True), cell(r.reviewer, single_line=True),
                      cell(r.error))
    console.print(table)


def _open_audit(store, predictions: Path, kb, db: Path, sample_size: int | None, strategy: str, seed: int) -> None:
    """Start the audit on first use, else check the predictions file; say which."""
    from ..audit.cases import start_audit

    info, created = start_audit(store, predictions, kb, sample_size=sample_size, strategy=strategy, seed=seed)
    if created:
        say(f"Audit started on {predictions}: {len(store.cases())} of {info.records} cases "
            f"({info.strategy}{'' if info.sample_size is None else f', seed {info.seed}'}) in {db}")
    elif sample_size is not None and (sample_size, strategy, seed) != (info.sample_size, info.strategy, info.seed):
        say(f"This audit's sample was drawn when it started ({info.sample_size or 'all'} cases, {info.strategy}, "
            f"seed {info.seed}); --sample/--strategy/--seed are ignored")


def _join(store, kb, reviewer: str) -> None:
    """Register the reviewer and write what their pending file kept; say so."""
    from ..audit.cases import join_audit

    for pending, result, kept in join_audit(store, kb, reviewer):
        say(f"Wrote {result.imported} decision(s) kept in {pending} while the database was unavailable")
        if result.rejected:
            _print_rejected(result.rejected)
            say(f"the {len(result.rejected)} row(s) that could not be written are kept, with why, in {kept}: fix "
                f"them and `icdreason audit import {kept} --db {store.path}`")


@app.command("start")
def start(
    predictions: PredictionsArgument,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your reviewer id; your progress is kept under it.")],
    db: DbOption = Path("audit.duckdb"),
    sample_size: SampleOption = None,
    strategy: StrategyOption = "random",
    seed: SeedOption = 0,
    blind: BlindOption = False,
    kb: KbOption = None,
) -> None:
    """Review predictions case by case (resumes where you stopped).

    Keys: a accept, c correct, r reject, s skip, b back, f flag, n/p page, ? help, q quit. Every decision is saved at
    once. When stdin is not a terminal, give one key or answer per line.
    """
    from ..audit.keys import make_keys
    from ..audit.sampling import STRATEGIES
    from ..audit.session import ReviewSession
    from ..audit.store import AuditStore
    from ..audit.terminal import ReviewScreen, check_width

    _reviewer(reviewer)
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    check_width(console)
    disclaimer()
    store = AuditStore.open(db)
    with open_kb(kb) as base:
        _open_audit(store, predictions, base, db, sample_size, strategy, seed)
        _join(store, base, reviewer)
        session = ReviewSession(store, reviewer, base, blind=blind)
        if session.done:
            say(f"Nothing left for {reviewer}: all {len(session.cases)} cases decided. "
                f"See `icdreason audit report --db {db}`")
            return
        summary = ReviewScreen(session, console, make_keys(console)).run()
    c = summary.counts
    say(f"{reviewer}: {c['accept']} accepted, {c['correct']} corrected, {c['reject']} rejected, {c['skip']} skipped "
        f"this session; {summary.decided} decided in all, {summary.remaining} to go. "
        + ("Resume with the same command." if summary.remaining else "All cases decided."))
    if summary.pending:
        say(f"{summary.pending} decision(s) could not be written (database locked or read-only) and are kept in "
            f"{summary.pending_path}: the next `start` writes them, or `icdreason audit import` them")
        raise typer.Exit(1)


@app.command("serve")
def serve(
    predictions: PredictionsArgument,
    reviewer: Annotated[list[str], typer.Option("--reviewer", help="Reviewer id; repeat it for several reviewers "
                                                "(each gets their own address).")],
    db: DbOption = Path("audit.duckdb"),
    sample_size: SampleOption = None,
    strategy: StrategyOption = "random",
    seed: SeedOption = 0,
    blind: BlindOption = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0 picks a free one).")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but this machine's loopback "
                                      "lets others on the network reach the page (plain HTTP).")] = "127.0.0.1",
    kb: KbOption = None,
) -> None:
    """Review predictions in a web browser, keyboard-first: the same review and audit database as `start`.

    Prints one address per reviewer, with a secret token; open it in a browser. Keys: a accept, c correct, r reject
    (1-7 reason), s skip, b back, f flag, e blind code, ? help. Every decision is saved at once; Ctrl-C stops the
    server, and the next `serve` resumes at each reviewer's next open case.
    """
    from ..audit.sampling import STRATEGIES
    from ..audit.store import AuditStore
    from ..audit.web import ReviewDesk, bind, create_app, is_loopback, url
    from ..audit.web import serve as run_server

    for name in reviewer:
        _reviewer(name)
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    disclaimer()
    store = AuditStore.open(db)
    with open_kb(kb) as base:
        _open_audit(store, predictions, base, db, sample_size, strategy, seed)
        for name in reviewer:
            _join(store, base, name)
        desk = ReviewDesk(store, base, reviewer, blind=blind)
        if not is_loopback(host):
            err_console.print(f"[bold red]warning:[/] listening on {markup(host)}: anyone who can reach this machine "
                              "and has a reviewer's address can review under that name, and the traffic is plain "
                              "HTTP (not encrypted); use the default 127.0.0.1 with an SSH tunnel where you can",
                              highlight=False)
        sock = bind(host, port)
        address = url(sock, host)
        say(f"Serving {len(desk.reviewers)} reviewer(s) on {address}{' (blind mode)' if blind else ''}; "
            "open your address below in a browser. Ctrl-C stops the server; every decision is already saved.")
        for name, r in desk.reviewers.items():
            console.print(cell(f"{name}: {address}/?token={r.token}"), soft_wrap=True)
        console.file.flush()
        try:
            run_server(create_app(desk, cookie=f"icdreason_audit_{sock.getsockname()[1]}"), sock)
        finally:
            sock.close()
    for name, r in desk.reviewers.items():
        s = r.session
        c = s.counts
        say(f"{name}: {c['accept']} accepted, {c['correct']} corrected, {c['reject']} rejected, {c['skip']} skipped "
            f"this session; {s.decided} decided in all, {s.remaining} to go")
        if s.pending.decisions:
            say(f"{len(s.pending.decisions)} decision(s) of {name} could not be written (database locked or "
                f"read-only) and are kept in {s.pending.path}: the next `start` or `serve` writes them")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV of decisions: case_id, reviewer, decision, code, reason "
                                         "[, comment, seconds, blind_code, flagged, decided_at].")],
    db: DbOption = Path("audit.duckdb"),
    add_reviewer: Annotated[Optional[list[str]], typer.Option("--add-reviewer", help="Accept this reviewer id even "
                                                              "if it never started a session (repeatable).")] = None,
    predictions: Annotated[Optional[Path], typer.Option("--predictions", help="Start the audit on this predictions "
                                                        "file (all cases) if the database holds none yet; checked by "
                                                        "hash otherwise.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")] = False,
    rejected_out: Annotated[Optional[Path], typer.Option("--rejected-out", help="Write the rejected rows, with "
                                                         "their error, to this CSV.")] = None,
    kb: KbOption = None,
) -> None:
    """Load decisions made offline (a spreadsheet saved as CSV), validated row by row.

    Valid rows are written; rejected rows are listed with their line and why. Exit code 1 when any row was rejected.
    """
    from ..audit.cases import start_audit
    from ..audit.importer import import_decisions
    from ..audit.store import AuditStore

    for name in add_reviewer or []:
        _reviewer(name)
    store = AuditStore.open(db)
    with open_kb(kb) as base:
        if predictions is not None:
            start_audit(store, predictions, base)
        result = import_decisions(store, base, file, add_reviewers=tuple(add_reviewer or ()), dry_run=dry_run)
    verb = "would import" if dry_run else "imported"
    say(f"{file}: {verb} {result.imported} decision(s), {result.unchanged} unchanged, {len(result.rejected)} rejected")
    if result.rejected:
        _print_rejected(result.rejected)
        if rejected_out is not None:
            from ..files import atomic_write
            from ..tables.cells import CsvWriter

            def write(fh) -> None:
                writer = CsvWriter(fh)
                writer.writerow(["line", "case_id", "reviewer", "error"])
                writer.writerows([r.line, r.case_id, r.reviewer, r.error] for r in result.rejected)

            atomic_write(rejected_out, write, newline="")
            say(f"rejected rows written to {rejected_out}")
        raise typer.Exit(1)


@app.command("report")
def report(
    db: DbOption = Path("audit.duckdb"),
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write one self-contained HTML file.")] = None,
    md: Annotated[Optional[Path], typer.Option("--md", help="Also write the report as Markdown.")] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Embed plots in the HTML (when matplotlib, the "
                                        "plot extra, is installed).")] = True,
) -> None:
    """Acceptance, divergence levels, per-chapter table, agreement (kappa), time per case, reasons, flagged cases."""
    from ..audit.render import markdown, print_report
    from ..audit.report import build_report
    from ..audit.store import AuditStore
    from ..files import atomic_write_text

    result = build_report(AuditStore.open(db, create=False))
    print_report(result, console)
    if md is not None:
        atomic_write_text(md, markdown(result))
        say(f"Markdown report written to {md}")
    if html is not None:
        from ..audit.html import can_plot, html_report, plots_missing

        if plots and not can_plot():
            say(f"note: {plots_missing()}")
        atomic_write_text(html, html_report(result, with_plots=plots))
        say(f"HTML report written to {html}")
