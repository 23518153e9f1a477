"""``icdreason validate``: check codes against the ICD-10-CM format and the official code table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import InputError, UsageError
from .common import KbOption, console, open_kb

_STYLE = {"billable": "green", "header": "yellow", "unknown": "red", "malformed": "red"}


def read_codes_file(path: Path, column: str | None) -> list[str]:
    """Codes from a text file (one per line) or from one column of a CSV/TSV/JSONL file."""
    if not path.exists():
        raise InputError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: give a text, CSV, TSV or JSONL file of codes") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        if not column:
            raise UsageError(f"{path} is JSONL: name the field holding the codes with --column")
        codes = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{path}:{n} is not valid JSON") from None
            if column not in row:
                raise InputError(f"{path}:{n} has no field {column!r}")
            codes.append("" if row[column] is None else str(row[column]))
        return codes
    if suffix in (".csv", ".tsv") or column:
        dialect = "excel-tab" if suffix == ".tsv" else "excel"
        reader = csv.DictReader(io.StringIO(text), dialect=dialect)
        fields = reader.fieldnames or []
        name = column or (fields[0] if len(fields) == 1 else None)
        if name is None:
            raise UsageError(f"{path} has columns {', '.join(fields)}: choose one with --column")
        if name not in fields:
            raise InputError(f"{path} has no column {name!r} (columns: {', '.join(fields) or 'none'})")
        return [row[name] or "" for row in reader]
    return [line for line in text.splitlines() if line.strip()]


def validate(
    codes: Annotated[Optional[list[str]], typer.Argument(help="Codes to check (dotted or not, any case).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read codes from a file: one per line, or a "
                                                 "CSV/TSV/JSONL column (--column).")] = None,
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
        items.extend(read_codes_file(file, column))
    if not items:
        raise UsageError("no codes given: pass codes as arguments or --file FILE")
    with open_kb(kb) as base:
        verdicts = base.validate_many(items, suggestions=suggestions)
    if fmt == "jsonl":
        for v in verdicts:
            typer.echo(json.dumps(v.to_dict(), ensure_ascii=False))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["input", "code", "status", "description", "chapter", "suggestions", "message"])
        for v in verdicts:
            writer.writerow([v.input, v.code, v.status, v.description or "", v.chapter or "",
                             " ".join(v.suggestions), v.message])
        typer.echo(out.getvalue(), nl=False)
    else:
        table = Table(title=f"{len(verdicts)} codes")
        for col in ("input", "code", "status", "description / message", "suggestions"):
            table.add_column(col)
        for v in verdicts:
            text = v.description if v.status == "billable" else v.message
            if v.notes:
                text = f"{text} [dim]({'; '.join(v.notes)})[/dim]"
            table.add_row(repr(v.input) if v.input != v.input.strip() else v.input, v.code,
                          f"[{_STYLE[v.status]}]{v.status}[/]", text, ", ".join(v.suggestions))
        console.print(table)
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)
