"""How one case looks on the terminal (rich): the note with its evidence highlighted, the trace, the prediction.

Every piece of note and trace text goes into :class:`rich.text.Text` objects, never through markup, so text such as
``[bold]`` or ``<script>`` in a note is shown as written; control characters (escape sequences) are shown as visible
escapes (:func:`icdreason.display.visible`). Without colours (a pipe, ``NO_COLOR``), evidence sentences
are wrapped in ``«…»`` and trace sentences that the note does not back in ``‹…›``.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..codes import chapter_label, chapter_of
from ..display import cell, visible
from .sampling import share_of
from .session import CaseView
from .store import REJECT_REASONS

EVIDENCE_STYLE = "bold black on yellow"
UNSUPPORTED_STYLE = "italic magenta"
_STATUS_STYLE = {"billable": "green", "header": "yellow", "unknown": "red", "malformed": "red", "no_output": "red"}
GUIDELINE_CHARS = 700


def marked(text: str, spans: list[tuple[int, int]], style: str, plain: bool, marks: tuple[str, str]) -> Text:
    """``text`` with ``spans`` styled, or (``plain``) wrapped in the two marks; control characters made visible."""
    out = Text()
    pos = 0
    for start, end in sorted(spans):
        if start < pos:  # overlapping spans: the part already marked stays as it is
            start = pos
        out.append(visible(text[pos:start]))
        if plain:
            out.append(marks[0] + visible(text[start:end]) + marks[1])
        else:
            out.append(visible(text[start:end]), style=style)
        pos = max(pos, end)
    out.append(visible(text[pos:]))
    return out


def header(view: CaseView, reviewer: str, blind: bool) -> Text:
    line = Text()
    line.append(f"Case {view.number}/{view.total}", style="bold")
    line.append("  id ")
    line.append(visible(view.case.case_id, single_line=True), style="bold cyan")
    line.append(f"  ·  {reviewer}: {view.decided} decided")
    if blind:
        line.append("  ·  BLIND MODE", style="bold magenta")
    if view.flagged:
        line.append("  ·  FLAGGED", style="bold red")
    if view.previous is not None and view.previous.decision != "skip":
        prev = view.previous
        what = prev.decision + (f" {prev.expert_code}" if prev.expert_code else "")
        what += f" ({REJECT_REASONS[prev.reason]})" if prev.reason in REJECT_REASONS else ""
        line.append(f"\nrevisiting: you decided {visible(what)}; a new decision replaces it", style="yellow")
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
    code = cell(case.model_code or "(none)", style="bold", single_line=True)
    code.append(f"  {status}", style=_STATUS_STYLE.get(status, ""))
    grid.add_row("model code", code)
    description = (view.validation.description if view.validation else None) or case.description
    if description:
        grid.add_row("description", cell(description))
    if view.validation is not None and status != "billable":
        grid.add_row("validation", cell(view.validation.message))
    if rec.get("code_raw") and rec.get("code_raw") != case.model_code:
        grid.add_row("model wrote", cell(str(rec.get("code_raw"))))
    if view.path:
        grid.add_row("hierarchy", cell(" › ".join(f"{p.code} {p.description}" if p.kind != "chapter" else
                                                  f"Chapter {chapter_label(p.code)}: {p.description}" for p in view.path)))
    elif case.model_code and chapter_of(case.model_code):
        ch = chapter_of(case.model_code)
        grid.add_row("chapter", cell(f"{ch.label} {ch.title}"))
    conf, label = share_of(rec)
    if isinstance(conf, dict) and any(conf.values()):
        grid.add_row(label, cell(", ".join(f"{k} {_number(v)}" for k, v in conf.items() if v is not None)))
    top = rec.get("top_k") or []
    if len(top) > 1:
        grid.add_row("top-k", cell(", ".join(f"{t.get('code')} ({_number(t.get('support') or 0)})" for t in top
                                             if isinstance(t, dict))))
    if rec.get("flags"):
        flags = rec["flags"] if isinstance(rec["flags"], list) else [rec["flags"]]
        grid.add_row("flags", cell(", ".join(map(str, flags)), style="yellow"))
    if view.blind_code:
        same = (view.blind_code == case.model_code)
        grid.add_row("your blind code", cell(view.blind_code + ("  = model" if same else "  ≠ model"),
                                             style="green" if same else "yellow"))
    return Panel(grid, title="Prediction", title_align="left")


def enrichment_panel(view: CaseView) -> Panel | None:
    e = view.enrichment or {}
    if not e.get("symptoms") and not e.get("guideline") and not e.get("tabular_notes"):
        return None
    parts: list[RenderableType] = []
    if e.get("symptoms"):
        parts.append(cell(f"Symptoms ({e.get('symptoms_from') or 'code'}): ", style="bold") + cell(e["symptoms"]))
    if e.get("guideline"):
        text = e["guideline"]
        if len(text) > GUIDELINE_CHARS:
            text = text[:GUIDELINE_CHARS].rsplit(" ", 1)[0] + " …"
        parts.append(cell(f"Guideline {e.get('guideline_section') or ''}: ", style="bold") + cell(text))
    if e.get("tabular_notes"):  # its first line says where it comes from
        parts.append(cell(e["tabular_notes"]))
    return Panel(Group(*parts), title="Knowledge base", title_align="left")


def _number(value) -> str:
    """A confidence or support value from a record, to two decimals (or as written when it is not a number)."""
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return visible(value, single_line=True)


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
