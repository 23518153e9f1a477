"""How one case looks on the terminal (rich): the note with its evidence highlighted, the trace, the prediction.

Every piece of note and trace text goes into :class:`rich.text.Text` objects, never through markup, so text such as
``[bold]`` or ``<script>`` in a note is shown as written. Without colours (a pipe, ``NO_COLOR``), evidence sentences
are wrapped in ``«…»`` and trace sentences that the note does not back in ``‹…›``.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..codes import chapter_of
from .session import CaseView
from .store import REJECT_REASONS

EVIDENCE_STYLE = "bold black on yellow"
UNSUPPORTED_STYLE = "italic magenta"
_STATUS_STYLE = {"billable": "green", "header": "yellow", "unknown": "red", "malformed": "red", "no_output": "red"}
GUIDELINE_CHARS = 700


def marked(text: str, spans: list[tuple[int, int]], style: str, plain: bool, marks: tuple[str, str]) -> Text:
    """``text`` with ``spans`` styled, or (``plain``) wrapped in the two marks."""
    if not plain:
        out = Text(text)
        for start, end in spans:
            out.stylize(style, start, end)
        return out
    out = Text()
    pos = 0
    for start, end in sorted(spans):
        out.append(text[pos:start])
        out.append(marks[0] + text[start:end] + marks[1])
        pos = end
    out.append(text[pos:])
    return out


def header(view: CaseView, reviewer: str, blind: bool) -> Text:
    line = Text()
    line.append(f"Case {view.number}/{view.total}", style="bold")
    line.append("  id ")
    line.append(view.case.case_id, style="bold cyan")
    line.append(f"  ·  {reviewer}: {view.decided} decided")
    if blind:
        line.append("  ·  BLIND MODE", style="bold magenta")
    if view.flagged:
        line.append("  ·  FLAGGED", style="bold red")
    if view.previous is not None and view.previous.decision != "skip":
        prev = view.previous
        what = prev.decision + (f" {prev.expert_code}" if prev.expert_code else "")
        what += f" ({REJECT_REASONS[prev.reason]})" if prev.reason in REJECT_REASONS else ""
        line.append(f"\nrevisiting: you decided {what}; a new decision replaces it", style="yellow")
    return line


def note_panel(view: CaseView, *, highlight: bool, plain: bool) -> Panel:
    if view.note is None:
        body = Text("(the predictions file has no note text: it was written with --no-note)", style="dim")
    else:
        spans = [(e.start, e.end) for e in view.evidence] if highlight else []
        body = marked(view.note, spans, EVIDENCE_STYLE, plain, ("«", "»"))
    title = "Note"
    if highlight and view.evidence:
        title += f" — {len(view.evidence)} sentence(s) the trace relies on "
        title += "«marked»" if plain else "highlighted"
    return Panel(body, title=title, title_align="left")


def trace_panel(view: CaseView, *, plain: bool) -> Panel:
    spans = [(s.start, s.end) for s in view.unsupported]
    body = marked(view.trace or "(empty trace)", spans, UNSUPPORTED_STYLE, plain, ("‹", "›")) if view.trace else \
        Text("(empty trace)", style="dim")
    title = "Reasoning trace"
    if view.unsupported:
        title += f" — {len(view.unsupported)} sentence(s) share no words with the note " + \
            ("‹marked›" if plain else "in magenta")
    return Panel(body, title=title, title_align="left")


def prediction_panel(view: CaseView) -> Panel:
    case, rec = view.case, view.case.record
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    status = view.validation.status if view.validation else case.status or "no_output"
    code = Text(case.model_code or "(none)", style="bold")
    code.append(f"  {status}", style=_STATUS_STYLE.get(status, ""))
    grid.add_row("model code", code)
    description = (view.validation.description if view.validation else None) or case.description
    if description:
        grid.add_row("description", Text(description))
    if view.validation is not None and status != "billable":
        grid.add_row("validation", Text(view.validation.message))
    if rec.get("code_raw") and rec.get("code_raw") != case.model_code:
        grid.add_row("model wrote", Text(str(rec.get("code_raw"))))
    if view.path:
        grid.add_row("hierarchy", Text(" › ".join(f"{p.code} {p.description}" if p.kind != "chapter" else
                                                  f"Chapter {p.code}: {p.description}" for p in view.path)))
    elif case.model_code and chapter_of(case.model_code):
        ch = chapter_of(case.model_code)
        grid.add_row("chapter", Text(f"{ch.number} ({ch.range}) {ch.title}"))
    conf = rec.get("confidence")
    if isinstance(conf, dict) and any(conf.values()):
        grid.add_row("confidence", Text(", ".join(f"{k} {float(v):.2f}" for k, v in conf.items() if v is not None)))
    top = rec.get("top_k") or []
    if len(top) > 1:
        grid.add_row("top-k", Text(", ".join(f"{t.get('code')} ({float(t.get('support') or 0):.2f})" for t in top)))
    if rec.get("flags"):
        grid.add_row("flags", Text(", ".join(map(str, rec["flags"])), style="yellow"))
    if view.blind_code:
        same = (view.blind_code == case.model_code)
        grid.add_row("your blind code", Text(view.blind_code + ("  = model" if same else "  ≠ model"),
                                             style="green" if same else "yellow"))
    return Panel(grid, title="Prediction", title_align="left")


def enrichment_panel(view: CaseView) -> Panel | None:
    e = view.enrichment or {}
    if not e.get("symptoms") and not e.get("guideline"):
        return None
    parts: list[RenderableType] = []
    if e.get("symptoms"):
        parts.append(Text(f"Symptoms ({e.get('symptoms_from') or 'code'}): ", style="bold") + Text(e["symptoms"]))
    if e.get("guideline"):
        text = e["guideline"]
        if len(text) > GUIDELINE_CHARS:
            text = text[:GUIDELINE_CHARS].rsplit(" ", 1)[0] + " …"
        parts.append(Text(f"Guideline {e.get('guideline_section') or ''}: ", style="bold") + Text(text))
    return Panel(Group(*parts), title="Knowledge base", title_align="left")


def case_body(view: CaseView, reviewer: str, *, blind: bool, plain: bool) -> Group:
    """Everything above the key line. In the blind step only the note is shown, without highlights."""
    parts: list[RenderableType] = [header(view, reviewer, blind)]
    if view.needs_blind_code:
        parts.append(note_panel(view, highlight=False, plain=plain))
        return Group(*parts)
    parts += [note_panel(view, highlight=True, plain=plain), trace_panel(view, plain=plain), prediction_panel(view)]
    extra = enrichment_panel(view)
    if extra is not None:
        parts.append(extra)
    return Group(*parts)


def render_lines(console: Console, renderable: RenderableType) -> list[str]:
    """The renderable as printed lines (with ANSI styles when the console has colours)."""
    with console.capture() as capture:
        console.print(renderable)
    return capture.get().rstrip("\n").split("\n")
