"""Showing values that came from data (ids, codes, notes, traces, scraped text, reviewer comments) safely.

Data is untrusted wherever it is shown. Every printer in icdreason passes such values through one of these:

- :func:`visible`: control characters become visible escapes (``ESC`` → ``\\x1b``), so escape sequences in a note
  or an id never reach the terminal; C1 controls, bidirectional overrides, line/paragraph separators and lone
  surrogates (which a UTF-8 terminal cannot even encode) are shown the same way. Newlines and tabs are kept unless
  ``single_line``.
- :func:`markup`: :func:`visible` plus rich markup escaping, for a value placed inside a rich markup string
  (``f"[bold]{markup(code)}[/bold]"``): ``[/]`` or ``[bold]`` in data is printed as written.
- :func:`cell`: a :class:`rich.text.Text` of the visible value, for table cells and panels (never parsed as markup).
- :func:`markdown_text`: a value made inert in Markdown (links, images, raw HTML, emphasis, entities).

HTML outputs escape with :func:`html.escape`; CSV outputs neutralise formula cells (:mod:`icdreason.tables.cells`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["visible", "markup", "cell", "markdown_text"]

# C0 controls except tab and newline, DEL, C1 controls (U+0080-U+009F: NEL and CSI among them), the line and
# paragraph separators, bidirectional embeddings/overrides/isolates and marks, and lone surrogates.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                       "\ud800-\udfff]")
_LINE_BREAKS = re.compile("[\n\t]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any, *, single_line: bool = False) -> str:
    """``value`` as text with every control character shown as an escape (``\\x1b``, ``\\u202e``, ``\\ud83d``).

    Newlines (``\\r\\n`` read as one) and tabs are kept, unless ``single_line`` (ids, codes, file names), which
    shows them as ``\\n``/``\\t``; a lone carriage return, which would let text overwrite its own line, is escaped.
    """
    text = value if isinstance(value, str) else str(value)
    text = _CONTROLS.sub(_escape, text.replace("\r\n", "\n"))
    if single_line:
        text = _LINE_BREAKS.sub(lambda m: "\\n" if m.group() == "\n" else "\\t", text)
    return text


def markup(value: Any, *, single_line: bool = False) -> str:
    """``value`` made safe to put inside a rich markup string: :func:`visible`, then markup escaped."""
    from rich.markup import escape

    return escape(visible(value, single_line=single_line))


def cell(value: Any, *, style: str = "", single_line: bool = False) -> Text:
    """A rich ``Text`` of the visible value (for table cells, panels, ``console.print``): never parsed as markup."""
    from rich.text import Text

    return Text(visible("" if value is None else value, single_line=single_line), style=style)


# The characters that let inline Markdown text turn into something else: links and images ([ ] !), code spans,
# emphasis and strike-through, table cells, and the backslash itself; & < > become entities instead.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~!])")
_AUTOLINK = re.compile(r"(?i)(://|\bwww\.)")


def markdown_text(value: Any) -> str:
    """``value`` as inert Markdown text on one line: link, image and emphasis syntax is backslash-escaped
    (``[x](javascript:…)`` and ``![](http://…)`` stay visible text, never a link or a remote image), bare URLs are
    kept from being linked, ``& < >`` become entities (no raw HTML, no character references), control characters
    are made visible and newlines become spaces."""
    text = visible(value).replace("\n", " ").replace("\t", " ")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = _AUTOLINK.sub(lambda m: m.group(1).replace(":", "\\:").replace(".", "\\."), text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
