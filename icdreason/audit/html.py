"""The audit report as one self-contained HTML file: inline CSS, plots as base64 PNG, every text escaped.

Nothing from a note, a trace, a comment or a code is written without :func:`html.escape`; the page carries no script.
matplotlib is imported only here, when plots are drawn (the Agg backend, no display needed).
"""

from __future__ import annotations

import base64
import io
from html import escape

from .. import DISCLAIMER
from .evidence import find_evidence
from .render import _decision_text, headline
from .report import AuditReport

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
.disclaimer{background:#fff3cd;border:1px solid #e0c36a;padding:.8em 1em;border-radius:6px;font-weight:600}
table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:bottom;font-size:.85em;color:#666;text-align:left;padding-top:.3em}
.case{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:.6em;font-size:.9em}
mark{background:#ffe066}img{max-width:100%}.why{color:#a33}
"""


def _table(columns: list[str], rows: list[list[str]], caption: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i and _is_num(cell) else ""}>{escape(cell)}</td>'
                         for i, cell in enumerate(row)) + "</tr>" for row in rows
    )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _is_num(cell: str) -> bool:
    return bool(cell) and all(ch in "0123456789.,%-– n/a" for ch in cell)


def _highlighted_note(note: str, trace: str) -> str:
    """The note, escaped, with the evidence sentences in <mark>."""
    out, pos = [], 0
    for e in find_evidence(note, trace):
        out.append(escape(note[pos:e.start]))
        out.append(f"<mark>{escape(note[e.start:e.end])}</mark>")
        pos = e.end
    out.append(escape(note[pos:]))
    return "".join(out)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots(report: AuditReport) -> list[tuple[str, str]]:
    """(title, data URI) of each plot that has data."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    out = []
    chapters = report.plots.get("chapters") or {}
    if any(sum(v.values()) for v in chapters.values()):
        fig, ax = plt.subplots(figsize=(8, 3.2))
        labels = list(chapters)
        bottom = [0] * len(labels)
        colours = {"accept": "#4c9a2a", "correct": "#e0a800", "reject": "#c0392b"}
        for decision, colour in colours.items():
            values = [chapters[k][decision] for k in labels]
            ax.bar(labels, values, bottom=bottom, color=colour)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel("decisions")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(handles=[Patch(color=c, label=d) for d, c in colours.items()], frameon=False,
                  loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        out.append(("Decisions per chapter", _png(fig)))
    seconds = report.plots.get("seconds") or {}
    if seconds:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.hist(list(seconds.values()), bins=20, label=list(seconds), stacked=True)
        ax.set_xlabel("seconds per case")
        ax.set_ylabel("cases")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False)
        out.append(("Time per case", _png(fig)))
    for key, title in (("divergence", "Where corrections diverge"), ("reasons", "Rejection reasons")):
        data = report.plots.get(key) or {}
        if data:
            fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(data)))
            ax.barh(list(data)[::-1], list(data.values())[::-1], color="#5b7db1")
            ax.set_xlabel("cases")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            out.append((title, _png(fig)))
    return out


def can_plot() -> bool:
    """Whether matplotlib (the ``plot`` extra) is importable here."""
    import importlib.util

    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def plots_missing() -> str:
    """Why an HTML report has no plots on an install without the ``plot`` extra, and how to get them."""
    from ..errors import install_hint

    return f"plots left out: matplotlib is not installed ({install_hint('plot')})"


def html_report(report: AuditReport, *, with_plots: bool = True) -> str:
    """The whole report as one HTML document; with ``with_plots`` its plots, when matplotlib is installed (else a
    line saying why they are missing)."""
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>icdreason audit report</title><style>{CSS}</style></head><body>",
        f'<p class=disclaimer>{escape(DISCLAIMER)}</p>',
        "<h1>icdreason audit report</h1>",
        _table(["", ""], [[k, v] for k, v in headline(report)]),
    ]
    for section in report.sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts.append(_table(section.columns, section.rows, section.note) if section.rows else
                     f"<p><em>No data.</em> {escape(section.note)}</p>")
    if with_plots and not can_plot():
        parts.append(f"<h2>Plots</h2><p><em>{escape(plots_missing())}.</em></p>")
    elif with_plots:
        figures = plots(report)
        if figures:
            parts.append("<h2>Plots</h2>")
            for title, uri in figures:
                parts.append(f"<figure><img alt='{escape(title, quote=True)}' src='{uri}'>"
                             f"<figcaption>{escape(title)}</figcaption></figure>")
    parts.append(f"<h2>Flagged cases ({len(report.flagged)})</h2>")
    for f in report.flagged:
        case = f.case
        rec = case.record
        parts.append("<div class=case>")
        parts.append(f"<h3>Case {escape(case.case_id)}: {escape(case.model_code or '(no code)')} "
                     f"{escape(case.description or '')}</h3>")
        parts.append(f"<p class=why>{escape('; '.join(f.why))}</p><ul>")
        parts += [f"<li>{escape(_decision_text(d))}</li>" for d in f.decisions]
        parts.append("</ul>")
        note, trace = rec.get("note") or "", rec.get("trace") or ""
        if note:
            parts.append(f"<details open><summary>Note (evidence the trace relies on is marked)</summary>"
                         f"<pre>{_highlighted_note(note, trace)}</pre></details>")
        if trace:
            parts.append(f"<details><summary>Reasoning trace</summary><pre>{escape(trace)}</pre></details>")
        parts.append("</div>")
    parts.append(f"<footer><p class=disclaimer>{escape(DISCLAIMER)}</p></footer></body></html>")
    return "\n".join(parts)
