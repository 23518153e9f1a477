"""Reading a response the way the DeepICD-R1 authors' released reward reads it: think/diagnosis *pairs*.

Their reward (DATEXIS/DeepICD-R1 ``src/rewards.py``, the function the paper's GRPO jobs use) puts ``<think>`` in
front of the response — always, even when the response opens with its own ``<think>`` — and then collects every
non-overlapping *pair*, left to right. icdreason's own reading (:mod:`icdreason.rewards.scan`) is different; this
module is the rule the ``deepicd-r1`` and ``authors-readme`` presets score with. Written from the rule, not from their
code. A pair:

- starts at a **line start** (the start of the text, or right after ``\\n``; ``\\r`` does not start a line), then
  optional whitespace (``str.isspace``, which is what a regular expression's ``\\s`` matches: newlines, tabs, NBSP…);
- optionally a think block: ``<think>``, then text containing neither ``<think>`` nor ``</think>``, then
  ``</think>``, then optional whitespace;
- then a diagnosis block: ``<diagnosis>``, text containing neither ``<diagnosis>`` nor ``</diagnosis>``,
  ``</diagnosis>``.

Tags are exact and case-sensitive. The next pair is searched from the end of the previous one, so a second pair on
the same line as the first is not a pair. When a think block opens a line but no diagnosis block follows it, that
line start yields nothing (the think block is not skipped to reach a later diagnosis).

:func:`find_pairs` implements this without a regular expression: one pass collects the tags (``str.find("<")`` is
memchr-fast and tags are rare), then the pairs are matched on that short list. A line-anchored pattern is tried at
every character and is several times slower.
``cli_tests/test_reward_presets.py`` checks it against a regular expression on generated responses.
"""

from __future__ import annotations

import re

__all__ = ["PREFILL", "find_pairs", "pair_spans", "pattern_code"]

#: What the authors' reward puts in front of every response before reading it.
PREFILL = "<think>"

#: The published code pattern. ``re.match`` with ``^…$`` also accepts one trailing newline before the end (``$``
#: matches there), which a diagnosis like ``I2510\n.`` reaches once its dots are removed.
_CODE = re.compile(r"[A-Z][0-9]{2}[A-Z0-9]{0,4}\n?\Z")


def pattern_code(text: str) -> bool:
    """True when ``text`` passes the published ``^[A-Z][0-9]{2}[A-Z0-9]{0,4}$`` check exactly as ``re.match`` does."""
    return _CODE.match(text) is not None


# Tag kinds, in the order the scan reports them.
_OPEN_THINK, _CLOSE_THINK, _OPEN_DIAG, _CLOSE_DIAG = 0, 1, 2, 3
_PREFILL_AT = -len(PREFILL)  # where the prefilled <think> sits, in the response's coordinates


def _tags(response: str) -> list[tuple[int, int]]:
    """(position, kind) of every tag, the prefilled ``<think>`` first (one memchr-fast pass over the ``<``)."""
    tags = [(_PREFILL_AT, _OPEN_THINK)]
    i = response.find("<")
    while i >= 0:
        if response.startswith("think>", i + 1):
            tags.append((i, _OPEN_THINK))
        elif response.startswith("/think>", i + 1):
            tags.append((i, _CLOSE_THINK))
        elif response.startswith("diagnosis>", i + 1):
            tags.append((i, _OPEN_DIAG))
        elif response.startswith("/diagnosis>", i + 1):
            tags.append((i, _CLOSE_DIAG))
        i = response.find("<", i + 1)
    return tags


def _starts_a_line(response: str, q: int, floor: int) -> bool:
    """Is there a line start ``p`` with ``floor <= p <= q`` and only whitespace between ``p`` and ``q``? (The
    prefilled tag starts the text; the response's own first character follows the prefill's ``>``.)"""
    if q == _PREFILL_AT:
        return True
    i = q
    while i > 0:
        c = response[i - 1]
        if c == "\n":
            return True
        if i - 1 < floor or not c.isspace():
            return False
        i -= 1
    return False


def _closing(tags: list[tuple[int, int]], k: int, opening: int) -> int:
    """Index of the tag that ends the block opened by ``tags[k]`` (the next tag of the same name), when it is the
    closing tag; -1 when it is another opening tag or there is none."""
    same = (opening, opening + 1)
    for j in range(k + 1, len(tags)):
        kind = tags[j][1]
        if kind in same:
            return j if kind == opening + 1 else -1
    return -1


def pair_spans(response: str) -> list[tuple[int, int, int, int]]:
    """(trace start, trace end, diagnosis start, diagnosis end) of every pair, as offsets into ``response``; a pair
    without a think block has an empty trace span. :func:`find_pairs` returns the texts."""
    tags = _tags(response)
    n = len(tags)
    spans: list[tuple[int, int, int, int]] = []
    floor = _PREFILL_AT  # the search for the next pair resumes here
    k = 0
    while k < n:
        q, kind = tags[k]
        if q < floor or kind in (_CLOSE_THINK, _CLOSE_DIAG) or not _starts_a_line(response, q, floor):
            k += 1
            continue
        trace = (0, 0)
        diag = k if kind == _OPEN_DIAG else -1
        if kind == _OPEN_THINK:
            j = _closing(tags, k, _OPEN_THINK)
            if j >= 0:
                close = tags[j][0]
                d = close + len("</think>")
                while d < len(response) and response[d].isspace():
                    d += 1
                if j + 1 < n and tags[j + 1] == (d, _OPEN_DIAG):
                    trace, diag = (max(q + len(PREFILL), 0), close), j + 1
        end = _closing(tags, diag, _OPEN_DIAG) if diag >= 0 else -1
        if end >= 0:
            spans.append((*trace, tags[diag][0] + len("<diagnosis>"), tags[end][0]))
            floor = tags[end][0] + len("</diagnosis>")
            k = end + 1
        else:
            floor = q + 1
            k += 1
    return spans


def find_pairs(response: str) -> list[tuple[str, str]]:
    """Every (trace, diagnosis) pair of ``"<think>" + response``, in order; the trace is ``""`` when the pair has no
    think block. The texts are returned as written (not stripped)."""
    return [(response[a:b], response[c:d]) for a, b, c, d in pair_spans(response)]
