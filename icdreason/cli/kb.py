"""``icdreason kb``: build, inspect, look up and search the ICD-10-CM knowledge base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import KbOption, cell, console, markup, open_kb, renamed_flag, renamed_value, say

app = typer.Typer(help="Build, inspect, look up and search the ICD-10-CM knowledge base.", no_args_is_help=True)


@app.command("build")
def build(
    kb: KbOption = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="A CMS ICD-10-CM tabular XML file (default: the "
                                                   "April-1-2026 release bundled with simple-icd-10-cm).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild a knowledge base that exists (e.g. of an old "
                                        "schema or another release). Never replaces a file that is not a knowledge "
                                        "base (a prediction log, an audit database, a damaged file).")] = False,
    index: Annotated[Optional[list[Path]], typer.Option(
        "--index", help="An official ICD-10-CM index XML (plain, .xz or .gz): the Index to Diseases and Injuries, the "
        "External Cause index, the Neoplasm or the Drug table; repeat for several. Kinds not given come from the "
        "files shipped with icdreason (FY2025; the main index is a lossy reconstruction, see knowledge/README.md).",
    )] = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Do not load the shipped index files (only those given "
                                           "with --index, if any).")] = False,
) -> None:
    """Build the knowledge base from the official CMS tabular XML and the Alphabetic Index."""
    from .. import config
    from ..kb import build_kb

    build_kb(config.kb_path(kb), source, force=force, progress=say, index=index or (), shipped_index=not no_index)


@app.command("import-index")
def import_index(
    files: Annotated[list[Path], typer.Argument(help="Official ICD-10-CM index XML files (plain, .xz or .gz), any of "
                                                "the four kinds; the kinds not given come from the shipped files.")],
    kb: KbOption = None,
) -> None:
    """Replace the Alphabetic Index of an existing knowledge base (one transaction; the code tables stay)."""
    from ..kb import KnowledgeBase

    with KnowledgeBase.open(kb, read_only=False, progress=say) as base:
        loaded = base.import_index(files, progress=say)
        release = base.release
    for f in loaded:
        say(f"{f.source}: {f.file} (release {f.release}): {f.terms:,} terms, {f.codes:,} codes, "
            f"{f.codes_missing:,} not in the tabular {release}")


@app.command("info")
def info(
    kb: KbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Release, counts per kind and per chapter, path and size."""
    with open_kb(kb) as base:
        facts = base.info()
    if as_json:
        console.print_json(json.dumps(facts))
        return
    head = Table(title="ICD-10-CM knowledge base", show_header=False)
    head.add_row("path", cell(facts["path"], single_line=True))
    head.add_row("size", f"{facts['size_bytes'] / 1e6:.1f} MB")
    head.add_row("release", cell(f"{facts['release']} ({facts['source_file']})"))
    head.add_row("built", cell(facts["built_at"]))
    for kind, n in facts["kinds"].items():
        head.add_row(plural(kind), f"{n:,}")
    head.add_row("billable codes", f"{facts['billable']:,}")
    for extra in ("symptoms", "guidelines"):
        if extra in facts:
            head.add_row(extra, f"{facts[extra]:,}")
    for f in facts.get("index", []):
        note = " [reconstruction: lossy, see knowledge/README.md]" if f["losses"] else ""
        head.add_row(f"index: {f['source']}", cell(
            f"{f['release']} ({f['file']}): {f['terms']:,} terms, {f['codes']:,} codes, {f['codes_missing']:,} not "
            f"in the tabular {facts['release']}{note}"))
    if not facts.get("index"):
        head.add_row("index", "none (kb build --index FILE, or kb import-index FILE)")
    console.print(head)
    chapters = Table(title="Chapters")
    for col in ("chapter", "title", "billable"):
        chapters.add_column(col, justify="right" if col == "billable" else "left")
    for ch in facts["chapters"]:
        chapters.add_row(cell(f"{ch['number']} ({ch['range']})"), cell(ch["title"]), f"{ch['billable']:,}")
    console.print(chapters)


@app.command("lookup")
def lookup(
    codes: Annotated[list[str], typer.Argument(help="Codes, dotted or not, any case (e.g. I21.4 m5116), or terms to look "
                                              "up in the Alphabetic Index (e.g. \"heart attack\").")],
    kb: KbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line instead of panels.")] = False,
) -> None:
    """Description, hierarchy path, billable status, tabular notes and index entries of codes (or of the code the
    Alphabetic Index gives for a term)."""
    from ..kb.lookup import describe_code

    found_all = True
    with open_kb(kb) as base:
        for raw in codes:
            card = describe_code(base, raw)
            found_all &= card["found"]
            if as_json:
                typer.echo(json.dumps(card, ensure_ascii=False))
            else:
                _print_card(card)
    if not found_all:
        raise typer.Exit(1)


def plural(word: str) -> str:
    """``category`` -> ``categories``, ``code`` -> ``codes`` (the kinds of the code table)."""
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _print_card(card: dict) -> None:
    """One code's card: every value from the knowledge base (scraped text included) is escaped for the terminal."""
    from rich.panel import Panel

    from ..codes import chapter_label

    if not card["found"]:
        console.print(f"[bold]{markup(card['input'], single_line=True)}[/bold]: [red]{markup(card['message'])}[/red]")
        return
    lines = []
    if card.get("looked_up"):
        found = card["looked_up"]
        lines.append(f"[dim]index:[/dim] {markup(found['term'])} → {markup(found['index_path'])}")
    lines.append(f"[bold]{markup(card['code'])}[/bold]  {markup(card['description'])}")
    if card["billable"]:
        lines.append("[green]billable[/green]")
    else:
        examples = f", e.g. {markup(', '.join(card['examples']))}" if card["examples"] else ""
        lines.append(f"[yellow]not billable[/yellow] ({markup(card['kind'])}): {card['billable_below']:,} billable "
                     f"codes below{examples}")
    path = " → ".join(f"{chapter_label(a['code']) if a['kind'] == 'chapter' else a['code']} {a['description']}"
                      for a in card["path"])
    lines.append(f"[dim]path:[/dim] {markup(path)}")
    for kind, texts in card["notes"].items():
        lines.append(f"[dim]{markup(kind.replace('_', ' '))}:[/dim] " + markup("; ".join(texts)))
    if card.get("index"):
        lines.append("[dim]index entries:[/dim] " + markup("; ".join(f"{e['path']} {e['code']}" for e in card["index"])))
    if card["seventh_characters"]:
        sevenths = "; ".join(f"{k} {v}" for k, v in card["seventh_characters"].items())
        lines.append("[dim]7th characters:[/dim] " + markup(sevenths))
    for key, label in (("symptoms", "symptoms"), ("guideline", "guideline")):
        if card.get(key):
            lines.append(f"[dim]{label}:[/dim] {markup(card[key])}")
    console.print(Panel("\n".join(lines), expand=False))


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Free text, e.g. \"nstemi\" or \"lumbar disc radiculopathy\".")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many codes to show.")] = 10,
    kb: KbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    top: Annotated[Optional[int], renamed_flag("--limit", "--top", "-k", min=1, max=1000)] = None,
) -> None:
    """Look a term up in the Alphabetic Index (main term, subterms, "see"), then search descriptions and inclusion
    terms (BM25); index hits first, with the path that led there."""
    if not query.strip():
        from ..errors import UsageError

        raise UsageError("empty query: give some words to search for, e.g. icdreason kb search \"chest pain\"")
    limit = renamed_value(limit, top, default=10, new="--limit")
    with open_kb(kb) as base:
        hits = base.search(query, k=limit)
    if as_json:
        for hit in hits:
            typer.echo(json.dumps(hit.__dict__, ensure_ascii=False))
        return
    if not hits:
        say(f"no code matches {query!r}")
        raise typer.Exit(1)
    table = Table(title=cell(f"kb search: {query}", single_line=True))
    table.add_column("code")
    table.add_column("billable")
    table.add_column("score", justify="right")
    table.add_column("description")
    table.add_column("found by")
    for hit in hits:
        if hit.index_path:
            found = f"index: {hit.index_path}"
            if hit.unmatched:
                found += f" (not in the index: {' '.join(hit.unmatched)})"
        else:
            found = "text"
        table.add_row(cell(hit.code), "yes" if hit.billable else "no", f"{hit.score:.2f}", cell(hit.description),
                      cell(found))
    console.print(table)


@app.command("import-guidelines")
def import_guidelines(
    directory: Annotated[Path, typer.Argument(help="A folder of chapter_N.json files, nested (chapter title → "
                                              "heading → … → text, e.g. the DeepICD-R1 release) or flat (heading → "
                                              "text, earlier icdreason exports), plus sections.json if present.")],
    kb: KbOption = None,
) -> None:
    """Load per-chapter guideline JSON files into the knowledge base's guidelines table (replacing it)."""
    from ..kb import KnowledgeBase
    from ..scrape.guidelines_store import import_json_dir, store_rows

    found = import_json_dir(directory)
    with KnowledgeBase.open(kb, read_only=False, progress=say) as base:
        stored = store_rows(base, found.rows, str(directory))
    say(found.summary(stored))


@app.command("export-guidelines")
def export_guidelines(
    directory: Annotated[Path, typer.Argument(help="The folder to write chapter_N.json (nested) and sections.json "
                                              "into; files of the same name are replaced.")],
    kb: KbOption = None,
) -> None:
    """Write the knowledge base's guidelines as nested per-chapter JSON (what import-guidelines reads back)."""
    from ..errors import KnowledgeBaseError
    from ..scrape.guidelines_store import export_json

    with open_kb(kb) as base:
        rows = base.guidelines()
    if not rows:
        raise KnowledgeBaseError("the knowledge base holds no guidelines: run `icdreason kb import-guidelines DIR` "
                                 "or `icdreason scrape guidelines --pdf FILE` first")
    files = export_json(rows, directory)
    chapters = [f.name for f in files if f.name != "sections.json"]
    say(f"Wrote {len(rows)} guideline sections to {len(files)} files in {directory} ({chapters[0]} … {chapters[-1]}"
        f"{' and sections.json' if len(chapters) < len(files) else ''})" if chapters else
        f"Wrote {len(rows)} guideline sections to {directory / 'sections.json'}")
