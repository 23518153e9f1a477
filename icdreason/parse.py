"""Read a model response: the paper's format check with a tolerant extraction, and the authors' think/diagnosis pairs.

The DeepICD-R1 format (format reward, section 3.1 of the paper) is satisfied when

1. the response is exactly one ``<think>…</think>`` block followed by one ``<diagnosis>…</diagnosis>`` block
   (arbitrary text inside each tag, only whitespace around and between them), and
2. the text inside ``<diagnosis>``, stripped and with the dot removed, matches ``^[A-Z][0-9]{2}[A-Z0-9]{0,4}$``
   (:data:`icdreason.codes.CODE_PATTERN`, case-sensitive, as published).

The reference models are prompted with the assistant turn already opened by ``<think>`` (the *prefill*), so their
generated text usually starts inside the think block. With ``prefilled_think=True`` (the default) a response that
does not itself begin with ``<think>`` is checked as if it did.

When the format does not hold, :func:`parse_response` still looks for a code (last diagnosis block, an unclosed
diagnosis tag, an answer line after ``</think>``, the last code-shaped token) and explains how in ``why``.

**The authors' reading** (their released reward and ``evaluate.py``; written from the rule, not from their code) is
the other one: :func:`pair_spans` / :func:`find_pairs` (every pair: the ``deepicd-r1`` and ``authors-readme`` reward
presets), :func:`first_pair` and :func:`strict_answer` (the first pair: what ``icdreason eval`` scores by default).
``<think>`` is put in front of the response — always, even when the response opens with its own ``<think>`` — and
every non-overlapping *pair* is collected, left to right. A pair:

- starts at a **line start** (the start of the text, or right after ``\\n``; ``\\r`` does not start a line), then
  optional whitespace (``str.isspace``, which is what a regular expression's ``\\s`` matches: newlines, tabs, NBSP…);
- optionally a think block: ``<think>``, then text containing neither ``<think>`` nor ``</think>``, then
  ``</think>``, then optional whitespace;
- then a diagnosis block: ``<diagnosis>``, text containing neither ``<diagnosis>`` nor ``</diagnosis>``,
  ``</diagnosis>``.

Tags are exact and case-sensitive. The next pair is searched from the end of the previous one, so a second pair on
the same line as the first is not a pair. When a think block opens a line but no diagnosis block follows it, that
line start yields nothing (the think block is not skipped to reach a later diagnosis). No pair, no answer: nothing is
salvaged. ``cli_tests/test_reward_presets.py`` checks the pairs against a regular-expression restatement of the rule
on generated responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .codes import CODE_PATTERN, ICD10CM_PATTERN, dotted, normalize

__all__ = ["Parsed", "parse_response", "format_ok", "first_pair", "find_pairs", "pair_spans", "strict_answer",
           "THINK_OPEN", "THINK_CLOSE", "DIAG_OPEN", "DIAG_CLOSE", "TAGS"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
DIAG_OPEN, DIAG_CLOSE = "<diagnosis>", "</diagnosis>"
TAGS = (THINK_OPEN, THINK_CLOSE, DIAG_OPEN, DIAG_CLOSE)

# Regex 1 of the paper: one think block then one diagnosis block, anything inside each, whitespace around.
_STRUCTURE = re.compile(r"\A\s*<think>(.*?)</think>\s*<diagnosis>(.*?)</diagnosis>\s*\Z", re.DOTALL)
_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_DIAG_BLOCK = re.compile(r"<diagnosis>(.*?)</diagnosis>", re.DOTALL)
_ANY_TAG = re.compile(r"</?(?:think|diagnosis)>")
# A code-shaped token: letter, digit, letter-or-digit, optionally a dot and up to four more. Upper case only in free
# text (so that words are not taken for codes); any case inside a diagnosis block.
_CODE_TOKEN = re.compile(r"(?<![A-Za-z0-9.])([A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?)(?![A-Za-z0-9])")
_CODE_TOKEN_ANY_CASE = re.compile(
    r"(?<![A-Za-z0-9.])([A-Za-z][0-9][0-9A-Za-z](?:\.?[0-9A-Za-z]{1,4})?)(?![A-Za-z0-9])"
)
_ANSWER_LINE = re.compile(
    r"(?:final\s+)?(?:diagnosis|icd(?:-?10(?:-?cm)?)?(?:\s+code)?|code|answer)\s*[:=\-]\s*\**\s*"
    r"([A-Za-z][0-9][0-9A-Za-z](?:\.?[0-9A-Za-z]{1,4})?)\b",
    re.IGNORECASE,
)


@dataclass
class Parsed:
    """What one response contained."""

    trace: str  # the reasoning text (the think block, or the best available stand-in)
    code_raw: str | None  # the diagnosis text as written (the block's content, or the token the fallback found)
    code: str | None  # dotted, normalised code, or None when no code-shaped text was found
    format_ok: bool  # the paper's two-regex check
    why: str | None  # None when the format held; otherwise what was wrong and how the code was found
    diagnosis_blocks: list[str] = field(default_factory=list)
    think_blocks: list[str] = field(default_factory=list)


def format_ok(text: str, *, prefilled_think: bool = True) -> bool:
    """The paper's format check alone (what the format reward uses)."""
    return _check(_with_prefill(text, prefilled_think)) is not None


def _with_prefill(text: str, prefilled_think: bool) -> str:
    if prefilled_think and not text.lstrip().startswith(THINK_OPEN):
        return THINK_OPEN + text
    return text


def _check(full: str) -> tuple[str, str] | None:
    """(think, diagnosis) when both regexes of the paper hold, else None."""
    m = _STRUCTURE.match(full)
    if m is None:
        return None
    think, diag = m.group(1), m.group(2)
    if any(tag in think or tag in diag for tag in TAGS):  # a second block hidden inside the first
        return None
    if CODE_PATTERN.match(diag.strip().replace(".", "")) is None:
        return None
    return think, diag


def _code_in(text: str, *, any_case: bool) -> tuple[str, str] | None:
    """(token as written, dotted code) of the most plausible code in a short text: the first one."""
    pattern = _CODE_TOKEN_ANY_CASE if any_case else _CODE_TOKEN
    for m in pattern.finditer(text):
        token = m.group(1)
        code = normalize(token)
        if ICD10CM_PATTERN.match(code):
            return token, dotted(code)
    return None


def _last_code_in(text: str) -> tuple[str, str] | None:
    """The last upper-case code-shaped token in free text, preferring dotted tokens (``I21.4`` over ``B12``)."""
    tokens = [m.group(1) for m in _CODE_TOKEN.finditer(text) if ICD10CM_PATTERN.match(normalize(m.group(1)))]
    if not tokens:
        return None
    dotted_tokens = [t for t in tokens if "." in t]
    token = (dotted_tokens or tokens)[-1]
    return token, dotted(normalize(token))


def _strip_tags(text: str) -> str:
    return _ANY_TAG.sub("", text).strip()


def _structure_notes(full: str, think_blocks: list[str], diag_blocks: list[str]) -> list[str]:
    counts = {tag: full.count(tag) for tag in TAGS}
    notes = []
    for name, open_, close in (("think", THINK_OPEN, THINK_CLOSE), ("diagnosis", DIAG_OPEN, DIAG_CLOSE)):
        o, c = counts[open_], counts[close]
        if o == 0 and c == 0:
            notes.append(f"no <{name}> block")
        elif o != c:
            notes.append(f"unbalanced <{name}> tags ({o} opening, {c} closing)")
        elif o > 1:
            nested = any(open_ in block for block in (think_blocks if name == "think" else diag_blocks))
            notes.append(f"{'nested' if nested else 'repeated'} <{name}> blocks ({o})")
    if not notes:
        if counts[THINK_CLOSE] and counts[DIAG_OPEN] and full.index(DIAG_OPEN) < full.index(THINK_CLOSE):
            notes.append("<diagnosis> inside or before <think>")
        elif _DIAG_BLOCK.search(full) and full.rstrip().endswith(DIAG_CLOSE) is False:
            notes.append("text after </diagnosis>")
        elif not full.lstrip().startswith(THINK_OPEN):
            notes.append("text before <think>")
    return notes


def parse_response(text: str | None, *, prefilled_think: bool = True) -> Parsed:
    """Parse one response. Never raises; ``why`` explains every deviation from the paper's format."""
    text = text or ""
    full = _with_prefill(text, prefilled_think)
    think_blocks = [b.strip() for b in _THINK_BLOCK.findall(full)]
    diag_blocks = [b.strip() for b in _DIAG_BLOCK.findall(full)]

    ok = _check(full)
    if ok is not None:
        think, diag = ok
        raw = diag.strip()
        return Parsed(think.strip(), raw, dotted(normalize(raw)), True, None, diag_blocks, think_blocks)

    if not text.strip():
        return Parsed("", None, None, False, "empty response", diag_blocks, think_blocks)

    notes = _structure_notes(full, think_blocks, diag_blocks)
    # The reasoning: everything before the first diagnosis tag, tags removed.
    cut = full.find(DIAG_OPEN)
    region = full if cut < 0 else full[:cut]
    if THINK_CLOSE in region:
        region = region[: region.rfind(THINK_CLOSE)]
    trace = _strip_tags(region)

    code_raw: str | None = None
    code: str | None = None
    how: str
    if diag_blocks:
        # The last block is the model's final word; within it, the first code-shaped token.
        for i in range(len(diag_blocks) - 1, -1, -1):
            found = _code_in(_strip_tags(diag_blocks[i]), any_case=True)
            if found:
                code_raw, code = diag_blocks[i], found[1]
                which = ("the diagnosis block" if len(diag_blocks) == 1
                         else f"diagnosis block {i + 1} of {len(diag_blocks)}")
                how = f"code {found[0]!r} taken from {which}"
                break
        else:
            code_raw = diag_blocks[-1]
            how = "no code-shaped text inside the diagnosis block"
    elif full.count(DIAG_OPEN):
        tail = full[full.rfind(DIAG_OPEN) + len(DIAG_OPEN):]
        found = _code_in(_strip_tags(tail)[:40], any_case=True)
        if found:
            code_raw, code = found[0], found[1]
            how = f"code {found[0]!r} taken from the unclosed diagnosis tag"
        else:
            code_raw = _strip_tags(tail)[:40] or None
            how = "unclosed diagnosis tag without a code (response cut off?)"
    else:
        after = full[full.rfind(THINK_CLOSE) + len(THINK_CLOSE):] if THINK_CLOSE in full else ""
        answer = _ANSWER_LINE.findall(after) or _ANSWER_LINE.findall(full)
        found = None
        if answer:
            found = (answer[-1], dotted(normalize(answer[-1])))
            how = f"code {answer[-1]!r} taken from an answer line (no diagnosis tags)"
        else:
            found = _last_code_in(_strip_tags(after)) if after.strip() else None
            if found:
                how = f"code {found[0]!r} is the last code-shaped text after </think> (no diagnosis tags)"
            else:
                found = _last_code_in(_strip_tags(full))
                if found:
                    how = f"code {found[0]!r} is the last code-shaped text in the response (no diagnosis tags)"
                else:
                    how = "no code-shaped text in the response"
        if found:
            code_raw, code = found
    if code is not None and code_raw is not None:
        content = code_raw.strip()
        if diag_blocks and len(diag_blocks) == 1 and not notes:
            if CODE_PATTERN.match(content.replace(".", "")) is None:
                if content != content.upper() and CODE_PATTERN.match(content.upper().replace(".", "")):
                    notes.append("diagnosis text is not upper case")
                elif content != normalize(content) and len(content) > len(code) + 1:
                    notes.append("extra text around the code inside <diagnosis>")
                else:
                    notes.append("diagnosis text does not match the paper's code pattern")
    elif diag_blocks and len(diag_blocks) == 1 and not notes:
        notes.append("diagnosis text is not a code")
    why = "; ".join([*notes, how]) if notes else how
    return Parsed(trace, code_raw, code, False, why, diag_blocks, think_blocks)


# -- the authors' reading: think/diagnosis pairs ------------------------------------------------------------------


def pair_spans(text: str, limit: int | None = None) -> list[tuple[int, int, int, int]]:
    """(trace start, trace end, diagnosis start, diagnosis end) of the pairs of ``"<think>" + text`` as offsets into
    ``text``, in order (at most ``limit``); a pair without a think block has the empty trace span ``(0, 0)``.

    The rule is the module docstring's. Tags are found with ``str.find("<")`` (memchr-fast; tags are rare), so a
    response costs a few C-level scans whatever its length, and degenerate ones (thousands of newlines or tags) stay
    linear. The tag lengths are written as numbers: <think> 7, </think> 8, <diagnosis> 11, </diagnosis> 12.
    """
    spans: list[tuple[int, int, int, int]] = []
    find, starts = text.find, text.startswith
    start = -7  # the prefilled <think>: it opens the text, at a line start, in the text's coordinates
    while True:
        if start < 0 or starts("<think>", start):  # a think block, then whitespace, then the diagnosis block
            diagnosis = -1
            trace = start + 7 if start >= 0 else 0
            trace_end = _block_end(text, trace, "<think>", "</think>")
            if trace_end >= 0:
                d = trace_end + 8
                while d < len(text) and text[d].isspace():
                    d += 1
                if starts("<diagnosis>", d):
                    diagnosis = d
        else:  # a diagnosis block without a think block
            diagnosis, trace, trace_end = start, 0, 0
        end = _block_end(text, diagnosis + 11, "<diagnosis>", "</diagnosis>") if diagnosis >= 0 else -1
        if end >= 0:
            spans.append((trace, trace_end, diagnosis + 11, end))
            if len(spans) == limit:
                return spans
            floor = end + 12  # the next pair is looked for after this one
        else:
            floor = start + 1
        start = find("<", max(floor, 0))  # the next opening tag that starts a line
        while start >= 0 and not ((starts("<think>", start) or starts("<diagnosis>", start))
                                  and _starts_a_line(text, start, floor)):
            start = find("<", start + 1)
        if start < 0:
            return spans


def _starts_a_line(text: str, i: int, floor: int) -> bool:
    """Is there only whitespace between ``text[i]`` and a line start at or after ``floor`` (right after a ``\\n``)?"""
    while i > 0:
        c = text[i - 1]
        if c == "\n":
            return True
        if i - 1 < floor or not c.isspace():
            return False
        i -= 1
    return False


def _block_end(text: str, body: int, opening: str, closing: str) -> int:
    """Where the block whose text starts at ``body`` is closed: the next ``closing`` tag, unless ``opening`` comes
    first (a block's text holds neither); -1 when it is not closed."""
    i = text.find("<", body)
    while i >= 0:
        if text.startswith(closing, i):
            return i
        if text.startswith(opening, i):
            return -1
        i = text.find("<", i + 1)
    return -1


def find_pairs(text: str) -> list[tuple[str, str]]:
    """Every (trace, diagnosis) pair of ``"<think>" + text``, in order, as written (not stripped); the trace is
    ``""`` when the pair has no think block."""
    return [(text[a:b], text[c:d]) for a, b, c, d in pair_spans(text)]


def first_pair(text: str | None) -> tuple[str, str] | None:
    """(trace, diagnosis) of the first think/diagnosis pair the authors' reading finds, raw; None without a pair.

    ``<think>`` is always put in front of the response first (their prefill), even when the response opens with its
    own ``<think>``: such a response only has a pair where a ``<diagnosis>`` block starts a later line. The trace is
    ``""`` when the pair has no think block.
    """
    text = text or ""
    spans = pair_spans(text, limit=1)
    return (text[spans[0][0]:spans[0][1]], text[spans[0][2]:spans[0][3]]) if spans else None


def strict_answer(text: str | None) -> str | None:
    """The prediction the authors' evaluation reads from a response: the first pair's diagnosis text, stripped, with
    every dot removed, case kept and no code check (so it can be free text); None when the response has no pair.

    ``icdreason eval`` then normalises it like any prediction (a malformed or out-of-space answer is NIL).
    """
    text = text or ""
    spans = pair_spans(text, limit=1)  # not first_pair: the trace is not copied (1M responses in a few seconds)
    return text[spans[0][2]:spans[0][3]].strip().replace(".", "") if spans else None
