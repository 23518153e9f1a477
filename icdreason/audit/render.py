"""The audit report as rich tables (terminal) and as Markdown.

Every value from data (ids, codes, descriptions, reviewer comments) is shown through :mod:`icdreason.display`: on the
terminal as visible text (no markup, no escape sequences), in Markdown as inert text (no links, images or HTML); the
note and the trace go into fenced blocks, which Markdown never interprets.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import DISCLAIMER
from ..display import cell, markdown_text, visible
from .report import AuditReport, Section, pct
from .store import REJECT_REASONS

NOTE_CHARS = 1500


def headline(report: AuditReport) -> list[tuple[str, str]]:
    """The facts at the top of every rendering."""
    info = report.info
    sample = "all records" if info.sample_size is None else f"{info.sample_size} by {info.strategy}, seed {info.seed}"
    return [
        ("predictions", f"{info.predictions_path} (sha256 {info.predictions_sha256[:12]}…)"),
        ("run", info.run_id or "–"),
        ("cases", f"{report.cases} of {info.records} records ({sample})"),
        ("reviewers", ", ".join(report.reviewers) or "none yet"),
        ("decided", str(report.decided)),
        ("acceptance rate", pct(report.acceptance_rate)),
    ]


def print_report(report: AuditReport, console: Console) -> None:
    """Rich tables on the console."""
    console.print(Text(DISCLAIMER, style="dim"))
    head = Table(title="Audit", show_header=False)
    for key, value in headline(report):
        head.add_row(key, cell(value))
    console.print(head)
    for section in report.sections:
        if not section.rows:
            console.print(cell(f"{section.title}: no data. {section.note}".rstrip(), style="dim"))
            continue
        table = Table(title=cell(section.title), caption=cell(section.note) if section.note else None)
        for i, col in enumerate(section.columns):
            table.add_column(cell(col), justify="right" if i and _numeric(section, i) else "left")
        for row in section.rows:
            table.add_row(*(cell(value) for value in row))
        console.print(table)
    if report.flagged:
        table = Table(title=f"Flagged cases ({len(report.flagged)})")
        for col in ("case", "model code", "why", "decisions"):
            table.add_column(col)
        for f in report.flagged:
            table.add_row(cell(f.case.case_id, single_line=True), cell(f.case.model_code or "–"),
                          cell("; ".join(f.why)), cell("; ".join(_decision_text(d) for d in f.decisions)))
        console.print(table)


def _numeric(section: Section, i: int) -> bool:
    return all(re.fullmatch(r"[-–0-9.,%n/a ]+", row[i] or "–") for row in section.rows) if section.rows else False


def _decision_text(d) -> str:
    text = f"{d.reviewer}: {d.decision}"
    if d.expert_code:
        text += f" {d.expert_code}"
    if d.reason:
        text += f" ({REJECT_REASONS.get(d.reason, d.reason)})"
    if d.comment:
        text += f" — {d.comment}"
    return text


def _md_cell(text: str) -> str:
    return markdown_text(text)


def _fence(text: str) -> str:
    """A fenced block longer than any run of backticks in ``text`` (so the text cannot close it)."""
    text = visible(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def markdown(report: AuditReport) -> str:
    """The report as one Markdown document (tables, then flagged cases with their note and trace)."""
    out = [f"# icdreason audit report\n\n> **{DISCLAIMER}**\n"]
    out.append("| | |\n|---|---|")
    out += [f"| {k} | {_md_cell(v)} |" for k, v in headline(report)]
    for section in report.sections:
        out.append(f"\n## {section.title}\n")
        if section.note:
            out.append(f"{_md_cell(section.note)}\n")
        if not section.rows:
            out.append("_No data._")
            continue
        out.append("| " + " | ".join(_md_cell(c) for c in section.columns) + " |")
        out.append("|" + "|".join("---" for _ in section.columns) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
    out.append(f"\n## Flagged cases ({len(report.flagged)})\n")
    for f in report.flagged:
        case = f.case
        out.append(f"### Case {_md_cell(case.case_id)}: {_md_cell(case.model_code or '(no code)')} "
                   f"{_md_cell(case.description or '')}\n")
        out.append(f"- why: {_md_cell('; '.join(f.why))}")
        out += [f"- {_md_cell(_decision_text(d))}" for d in f.decisions]
        note = case.record.get("note") or ""
        if note:
            short = note if len(note) <= NOTE_CHARS else note[:NOTE_CHARS] + " …"
            out.append("\nNote:\n\n" + _fence(short))
        if case.record.get("trace"):
            out.append("\nTrace:\n\n" + _fence(case.record["trace"]))
        out.append("")
    return "\n".join(out) + "\n"
