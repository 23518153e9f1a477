"""``icdreason validate``: check codes against the ICD-10-CM format and the official code table."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import UsageError
from .common import KbOption, cell, console, open_kb, visible

_STYLE = {"billable": "green", "header": "yellow", "unknown": "red", "malformed": "red"}


def validate(
    codes: Annotated[Optional[list[str]], typer.Argument(help="Codes to check (dotted or not, any case).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read codes from a file: text (one or more "
                                                 "per line, # comments), or a column of a CSV/TSV/JSONL/Parquet "
                                                 "table (--column; default code, or the only column).")] = None,
    column: Annotated[Optional[str], typer.Option("--column", help="Column or field holding the codes.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output format: table, jsonl or csv.")] = "table",
    suggestions: Annotated[int, typer.Option("--suggestions", min=0, max=50,
                                             help="Suggestions per code that is not billable.")] = 5,
    kb: KbOption = None,
) -> None:
    """Check ICD-10-CM codes: billable, header (not billable), unknown or malformed.

    Exit code 0 when every code is billable, 1 otherwise, 2 on usage errors.
    """
    if fmt not in ("table", "jsonl", "csv"):
        raise UsageError(f"unknown --format {fmt!r}: choose table, jsonl or csv")
    items = list(codes or [])
    if file is not None:
        from ..tables import read_codes_file

        from_file = read_codes_file(file, column)
        if not from_file and not items:
            raise UsageError(f"{file} holds no codes" + (f" in column {column!r}" if column else "")
                             + ": list codes in it (one or more per line, # comments) or pass them as arguments")
        items.extend(from_file)
    if not items:
        raise UsageError("no codes given: pass codes as arguments or --file FILE")
    with open_kb(kb) as base:
        verdicts = base.validate_many(items, suggestions=suggestions)
    if fmt == "jsonl":
        for v in verdicts:
            typer.echo(json.dumps(v.to_dict(), ensure_ascii=False))
    elif fmt == "csv":
        from ..tables.cells import CsvWriter

        out = io.StringIO()
        writer = CsvWriter(out)
        writer.writerow(["input", "code", "status", "description", "chapter", "suggestions", "message"])
        for v in verdicts:  # printed: control characters from the input shown as escapes, as JSON lines do
            writer.writerow([visible(v.input), visible(v.code), v.status, v.description or "", v.chapter or "",
                             " ".join(v.suggestions), visible(v.message)])
        typer.echo(out.getvalue(), nl=False)
    else:
        table = Table(title=f"{len(verdicts)} codes")
        for col in ("input", "code", "status", "description / message", "suggestions"):
            table.add_column(col)
        for v in verdicts:
            text = cell(v.description if v.status == "billable" else v.message)
            if v.notes:
                text.append(cell(f" ({'; '.join(v.notes)})", style="dim"))
            table.add_row(cell(repr(v.input) if v.input != v.input.strip() else v.input, single_line=True),
                          cell(v.code, single_line=True), cell(v.status, style=_STYLE[v.status]), text,
                          cell(", ".join(v.suggestions)))
        console.print(table)
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)
