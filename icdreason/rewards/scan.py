"""Reading a response for the reward: where the reasoning trace is, which diagnosis counts, the paper's format check.

The response may start inside the reasoning block (the rollout was prefilled with ``<think>``): when it does not
begin with ``<think>``, the tag is put in front before checking, as the authors' released code does. The diagnosis
that counts is the first ``<diagnosis>`` block after the closing ``</think>``. The tags are those of
:mod:`icdreason.parse`; this scanner is the reward's fast path (no regular expressions over the whole response).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..codes import CODE_PATTERN
from ..parse import DIAG_CLOSE, DIAG_OPEN, THINK_CLOSE, THINK_OPEN

__all__ = ["ResponseParts", "split_response"]

_LEN_THINK_CLOSE, _LEN_DIAG_OPEN, _LEN_DIAG_CLOSE = len(THINK_CLOSE), len(DIAG_OPEN), len(DIAG_CLOSE)


@dataclass(slots=True)
class ResponseParts:
    """What the reward reads from one response (the trace is kept as a span: no copy unless asked for)."""

    text: str
    trace_span: tuple[int, int] | None  # where the reasoning text is (None: no closed reasoning block)
    diagnosis: str | None  # raw text of the diagnosis block that counts
    code: str | None  # undotted code when the diagnosis matches the paper's pattern, else None
    diagnosis_blocks: int  # complete <diagnosis>…</diagnosis> blocks in the response
    format_ok: bool  # the paper's two checks
    empty: bool

    @property
    def trace(self) -> str | None:
        """The reasoning text, or None without a closed reasoning block."""
        return None if self.trace_span is None else self.text[self.trace_span[0]:self.trace_span[1]]

    @property
    def has_trace(self) -> bool:
        """True when the reasoning block holds non-whitespace text."""
        return self.trace_span is not None and _NON_SPACE.search(self.text, *self.trace_span) is not None


_NON_SPACE = re.compile(r"\S")


def split_response(response: str) -> ResponseParts:
    """Find the reasoning trace and the diagnosis in a response, with or without the opening ``<think>``.

    One left-to-right scan over the ``<`` characters (``str.find`` is memchr-fast; tags are rare), so a step of
    512 responses of ~500 words takes a few milliseconds.
    """
    if not response or response.isspace():
        return ResponseParts(response or "", None, None, None, 0, False, True)
    prefilled = not response.lstrip().startswith(THINK_OPEN)
    # counts: <think>, </think>, <diagnosis>, </diagnosis>; the prefill counts as one opening <think> at -1.
    n_ot, n_ct, n_od, n_cd = (1 if prefilled else 0), 0, 0, 0
    first_ot = -1 if prefilled else None
    close_t = open_d = close_d = -1
    i = response.find("<")
    while i >= 0:
        if response.startswith(THINK_OPEN, i):
            n_ot += 1
            if first_ot is None:
                first_ot = i
        elif response.startswith(THINK_CLOSE, i):
            n_ct += 1
            if close_t < 0:
                close_t = i
        elif response.startswith(DIAG_OPEN, i):
            n_od += 1
            if open_d < 0 and close_t >= 0:
                open_d = i
        elif response.startswith(DIAG_CLOSE, i):
            n_cd += 1
            if close_d < 0 and open_d >= 0:
                close_d = i
        i = response.find("<", i + 1)
    blocks = min(n_od, n_cd)
    if close_t < 0:
        return ResponseParts(response, None, None, None, blocks, False, False)
    span = (first_ot + len(THINK_OPEN) if first_ot >= 0 else 0, close_t)
    if close_d < 0:
        return ResponseParts(response, span, None, None, blocks, False, False)
    diagnosis = response[open_d + _LEN_DIAG_OPEN:close_d]
    candidate = diagnosis.strip().replace(".", "")
    code = candidate if CODE_PATTERN.match(candidate) else None
    format_ok = (
        code is not None
        and n_ot == 1 and n_ct == 1 and n_od == 1 and n_cd == 1
        and (open_d == close_t + _LEN_THINK_CLOSE or response[close_t + _LEN_THINK_CLOSE:open_d].isspace())
        and (close_d + _LEN_DIAG_CLOSE == len(response) or response[close_d + _LEN_DIAG_CLOSE:].isspace())
    )
    return ResponseParts(response, span, diagnosis, code, blocks, format_ok, False)
