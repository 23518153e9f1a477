"""Parse a model response: the paper's format check, then a tolerant extraction that says what it did.

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

:func:`strict_answer` is the other reading: the one the DeepICD-R1 authors' evaluation applies (their released
``evaluate.py``), which ``icdreason eval`` scores by default. It takes the first think/diagnosis *pair* that starts a
line of ``"<think>" + response`` and nothing else: no fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .codes import CODE_PATTERN, ICD10CM_PATTERN, dotted, normalize

__all__ = ["Parsed", "parse_response", "format_ok", "first_pair", "strict_answer", "THINK_OPEN", "THINK_CLOSE",
           "DIAG_OPEN", "DIAG_CLOSE", "TAGS"]

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


def _text_without(tag: str) -> str:
    """A pattern for text that contains neither ``<tag>`` nor ``</tag>`` (any other ``<`` is fine). Possessive: the
    block's content ends where either tag first appears, so giving characters back can never reach the closing tag,
    and a response without one fails in one pass instead of backtracking over every character."""
    return rf"[^<]*+(?:<(?!/?{tag}>)[^<]*+)*+"


# The authors' pair: at a line start (MULTILINE ``^``: the start of the text or right after "\n"), optional
# whitespace, an optional think block and optional whitespace, then a diagnosis block. Tags exact and case-sensitive.
# The whitespace runs are possessive: what follows them is always "<", so giving whitespace back never helps, and a
# response of a few thousand newlines stays linear per line start (a plain ``\s*…\s*`` around the optional block
# takes seconds on such a response).
_PAIR = re.compile(
    rf"^\s*+(?:<think>({_text_without('think')})</think>\s*+)?<diagnosis>({_text_without('diagnosis')})</diagnosis>",
    re.MULTILINE,
)


# Where else a pair can start: a line whose first non-blank text is a tag. Trying the pair only after such a "\n"
# finds the same first pair as ``search`` (blank lines before the tag's own line would give the same groups), and
# matching the blanks without "\n" keeps a response of thousands of newlines linear.
_TAG_LINE = re.compile(r"\n[^\S\n]*+<(?:think|diagnosis)>")


def first_pair(text: str | None) -> tuple[str, str] | None:
    """(trace, diagnosis) of the first think/diagnosis pair the authors' reading finds, raw; None without a pair.

    ``<think>`` is always put in front of the response first (their prefill), even when the response opens with its
    own ``<think>``: such a response only has a pair where a ``<diagnosis>`` block starts a later line. The trace is
    ``""`` when the pair has no think block.
    """
    full = THINK_OPEN + (text or "")
    m = _PAIR.match(full)
    if m is None:
        for line in _TAG_LINE.finditer(full):
            m = _PAIR.match(full, line.start() + 1)
            if m is not None:
                break
        else:
            return None
    return m.group(1) or "", m.group(2)


def strict_answer(text: str | None) -> str | None:
    """The prediction the authors' evaluation reads from a response: the first pair's diagnosis text, stripped, with
    every dot removed, case kept and no code check (so it can be free text); None when the response has no pair.

    ``icdreason eval`` then normalises it like any prediction (a malformed or out-of-space answer is NIL).
    """
    pair = first_pair(text)
    return None if pair is None else pair[1].strip().replace(".", "")
