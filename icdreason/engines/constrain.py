"""Constrained decoding of the whole answer: reasoning, ``</think>``, then ``<diagnosis>`` + a billable code +
``</diagnosis>``, always within the token budget.

Code form. The authors' released models write the code **undotted** inside the tag (``M5116``, like the MIMIC-IV
labels they were trained on); the bundled prompt asks for the dotted form (``M51.16``); the paper's format check removes
the dot before matching. :data:`CODE_FORMS`: ``either`` (the default: both forms are accepted), ``undotted`` or
``dotted``.

Two builders share one code list:

- :class:`DiagnosisConstraint` + :class:`DiagnosisLogitsProcessor` for Hugging Face ``generate``. If the prefill does
  not open ``<think>`` the answer opens it. The reasoning is free text without ``<``: the probability the model gives to
  every token holding ``<`` and to end-of-sequence (its wish to close the reasoning, open a tag or stop) goes to the
  first token of ``</think>\n<diagnosis>``; once chosen, the rest of that text is forced. Inside the tag each step only
  allows tokens that extend the text towards a billable code (a trie over the code strings, matched against each
  token's decoded text, so it works whatever way the tokenizer splits codes); after a complete code ``</diagnosis>`` is
  forced, then end-of-sequence. With ``max_new_tokens`` known, the closing structure's tokens are reserved: when only
  they are left, the reasoning is closed, so a constrained answer is always well-formed.
- :func:`diagnosis_regex` for vLLM structured output (``StructuredOutputsParams(regex=...)`` in vLLM >= 0.12,
  ``GuidedDecodingParams(regex=...)`` before) and OpenAI-compatible servers with guided decoding (vLLM:
  ``structured_outputs`` or ``guided_regex``; SGLang: ``regex``): the whole answer after the prefill must be
  ``…</think> <diagnosis>CODE</diagnosis>``, with ``CODE`` either any well-formed code (``mode="format"``) or a
  billable code (``mode="billable"``, the code list as a compact trie-shaped regex). Servers without guided decoding
  (``transformers serve``, most hosted APIs) ignore or refuse the field: there the answer is not constrained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..codes import dotted as to_dotted
from ..codes import normalize
from ..errors import UsageError

OPEN_TAG = "<diagnosis>"
CLOSE_TAG = "</diagnosis>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: How a code may be written inside the tag.
CODE_FORMS = ("either", "undotted", "dotted")


def check_code_form(form: str) -> str:
    """``form`` if it is one of :data:`CODE_FORMS`, else a usage error."""
    if form not in CODE_FORMS:
        raise UsageError(f"code_format must be one of {', '.join(CODE_FORMS)}, not {form!r}")
    return form


def billable_code_strings(kb, *, dotted: bool = False, form: str | None = None) -> list[str]:
    """Every billable code of the knowledge base as the model may write it inside the tag (``form``, or undotted /
    dotted by ``dotted`` when ``form`` is not given)."""
    if kb is None:
        raise UsageError("--constrain needs the knowledge base: build it with `icdreason kb build` or pass --kb")
    return code_strings(kb.billable_codes(), dotted=dotted, form=form)


def code_strings(codes: Iterable[str], *, dotted: bool = False, form: str | None = None) -> list[str]:
    """Normalise codes to the written form: ``M5116`` (or ``M51.16`` with ``dotted=True`` / ``form="dotted"``; both
    with ``form="either"``), sorted and unique."""
    form = check_code_form(form) if form else ("dotted" if dotted else "undotted")
    out: set[str] = set()
    for c in codes:
        if not (c and c.strip()):
            continue
        if form in ("undotted", "either"):
            out.add(normalize(c))
        if form in ("dotted", "either"):
            out.add(to_dotted(c))
    return sorted(out)


# -- Hugging Face generate -------------------------------------------------------------------------------------------


class DiagnosisConstraint:
    """What each decoding state allows, precomputed once per tokenizer and code list (reuse it across batches)."""

    def __init__(self, tokenizer, codes: Iterable[str], eos_ids: Iterable[int] | None = None):
        self.codes = frozenset(codes)
        if not self.codes:
            raise UsageError("--constrain got an empty code list: the knowledge base has no billable codes")
        self.prefixes = frozenset(c[:i] for c in self.codes for i in range(len(c) + 1))
        alphabet = set("".join(self.codes))
        self.vocab_size = len(tokenizer)
        self.strings = [tokenizer.decode([i]) for i in range(self.vocab_size)]
        # tokens made only of code characters: the candidates inside the tag
        self.code_tokens = [(i, s) for i, s in enumerate(self.strings) if s and set(s) <= alphabet]
        self.close_ids: list[int] = tokenizer.encode(CLOSE_TAG, add_special_tokens=False)
        self.think_ids: list[int] = tokenizer.encode(THINK_OPEN, add_special_tokens=False)
        self.transition_ids: list[int] = tokenizer.encode(THINK_CLOSE + "\n" + OPEN_TAG, add_special_tokens=False)
        self.open_ids: list[int] = tokenizer.encode("\n" + OPEN_TAG, add_special_tokens=False)
        eos = sorted(set(eos_ids or ())) or ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
        if not eos:
            raise UsageError("--constrain needs a tokenizer with an end-of-sequence token")
        self.eos_id: int = eos[0]
        special = set(getattr(tokenizer, "all_special_ids", None) or ())
        # what ends free reasoning: a "<" (a tag, a special token), end-of-sequence, any special token
        self.escape_ids: list[int] = sorted(
            {i for i, s in enumerate(self.strings) if "<" in s} | set(eos) | {i for i in special if i < self.vocab_size}
        )
        # tokens the rest of the answer may need at most: the transition, the longest code one character per token
        # (every code character is a token of its own in the worst case), the closing tag
        self.reserve = len(self.transition_ids) + max(len(c) for c in self.codes) + len(self.close_ids)
        self._allowed: dict[str, list[int]] = {}

    def allowed(self, partial: str) -> list[int]:
        """Token ids that may follow ``<diagnosis>`` + ``partial`` (the first closing token once the code is whole)."""
        hit = self._allowed.get(partial)
        if hit is None:
            hit = [i for i, s in self.code_tokens if partial + s in self.prefixes]
            if partial in self.codes:
                hit.append(self.close_ids[0])
            self._allowed[partial] = hit
        return hit

    def processor(self, prefills: list[str] | str = "", max_new_tokens: int | None = None) -> DiagnosisLogitsProcessor:
        """A fresh logits processor for one ``generate`` call; ``prefills`` gives each row's prefill (or one for all);
        ``max_new_tokens`` the budget within which the answer must be closed."""
        return DiagnosisLogitsProcessor(self, prefills=prefills, max_new_tokens=max_new_tokens)


THINK, FORCE, CODE, DONE = "think", "force", "code", "done"


@dataclass
class _Row:
    mode: str = THINK
    forced: list[int] = field(default_factory=list)  # FORCE: the token ids being written
    at: int = 0  # FORCE: next position in ``forced``
    then: str = THINK  # FORCE: the mode after the forced tokens
    partial: str = ""  # CODE: the code written so far inside the tag


@dataclass
class DiagnosisLogitsProcessor:
    """A ``transformers`` logits processor enforcing :class:`DiagnosisConstraint` on every row of one generate call.

    Rows are the ``batch * num_return_sequences`` sequences; the first call sees the (left-padded) prompt, every
    later call one new token per row. ``prefills`` is the text each row's answer starts with (one per row, or one
    string for all): a prefill that opened ``<think>`` starts in the reasoning, one that opened ``<diagnosis>``
    inside the tag.
    """

    constraint: DiagnosisConstraint
    prefills: list[str] | str = ""
    max_new_tokens: int | None = None
    rows: list[_Row] = field(default_factory=list)
    seen: int = -1
    prompt_width: int = 0

    def __call__(self, input_ids, scores):
        import torch

        if self.seen < 0:
            count = input_ids.shape[0]
            prefills = [self.prefills] * count if isinstance(self.prefills, str) else list(self.prefills)
            if len(prefills) != count:
                raise ValueError(f"{len(prefills)} prefills for {count} rows")
            self.rows = [self._start(p) for p in prefills]
            self.prompt_width = input_ids.shape[1]
        else:
            new = input_ids[:, self.seen :].tolist()
            for row, tokens in zip(self.rows, new):
                for token in tokens:
                    self._advance(row, token)
        self.seen = input_ids.shape[1]
        c = self.constraint
        left = None if self.max_new_tokens is None else self.max_new_tokens - (self.seen - self.prompt_width)
        for r, row in enumerate(self.rows):
            if row.mode == THINK:
                if left is not None and left <= c.reserve:  # only the closing structure fits now
                    allowed = [c.transition_ids[0]]
                else:
                    escape = scores[r, c.escape_ids]
                    mass = torch.logsumexp(escape, dim=0)
                    first = c.transition_ids[0]
                    own = scores[r, first].clone()
                    scores[r, c.escape_ids] = -float("inf")
                    scores[r, first] = mass if first in c.escape_ids else torch.logaddexp(mass, own)
                    continue
            elif row.mode == FORCE:
                allowed = [row.forced[row.at]]
            elif row.mode == CODE:
                allowed = c.allowed(row.partial) or c.close_ids[:1]
                if left is not None and left <= len(c.close_ids) and row.partial in c.codes:
                    allowed = c.close_ids[:1]
            else:
                allowed = [c.eos_id]
            keep = scores[r, allowed].clone()
            scores[r, :] = -float("inf")
            scores[r, allowed] = torch.where(torch.isfinite(keep), keep, torch.zeros_like(keep))
        return scores

    def _start(self, prefill: str) -> _Row:
        c = self.constraint
        if OPEN_TAG in prefill:
            return _Row(mode=CODE, partial=prefill.split(OPEN_TAG, 1)[1].strip())
        if THINK_CLOSE in prefill:
            return _force(c.open_ids, CODE)
        if THINK_OPEN in prefill:
            return _Row(mode=THINK)
        return _force(c.think_ids, THINK)

    def _advance(self, row: _Row, token: int) -> None:
        c = self.constraint
        if row.mode == THINK:
            if token == c.transition_ids[0]:
                row.mode, row.forced, row.at, row.then = FORCE, c.transition_ids, 1, CODE
                _settle(row)
        elif row.mode == FORCE:
            row.at += 1
            _settle(row)
        elif row.mode == CODE:
            if token == c.close_ids[0]:
                row.mode, row.forced, row.at, row.then = FORCE, c.close_ids, 1, DONE
                _settle(row)
            else:
                row.partial += c.strings[token] if token < c.vocab_size else ""


def _force(ids: list[int], then: str) -> _Row:
    row = _Row(mode=FORCE, forced=ids, at=0, then=then)
    _settle(row)
    return row


def _settle(row: _Row) -> None:
    """Leave FORCE mode once every forced token is written."""
    if row.mode == FORCE and row.at >= len(row.forced):
        row.mode = row.then


# -- vLLM structured output ------------------------------------------------------------------------------------------

#: Any well-formed ICD-10-CM code (the real structure, so that Z3A01 or M1A0110 are possible), undotted / dotted.
FORMAT_CODE = "[A-Z][0-9][A-Z0-9][A-Z0-9]{0,4}"
FORMAT_CODE_DOTTED = r"[A-Z][0-9][A-Z0-9](\.[A-Z0-9]{1,4})?"
FORMAT_CODE_EITHER = r"[A-Z][0-9][A-Z0-9](\.?[A-Z0-9]{1,4})?"
# Reasoning text that cannot close the block early or open a diagnosis inside it: any character but "<", or "<"
# followed by something other than "/", "d" or "<".
_THINK_TEXT = "([^<]|<[^/d<])*"
_WS = "[ \t\r\n]*"


def trie_regex(codes: Iterable[str]) -> str:
    """A compact regex matching exactly the given strings: shared prefixes are factored, leaf sets become classes."""
    root: dict[str, Any] = {}
    for code in codes:
        node = root
        for ch in code:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _emit(root)


def _emit(node: dict[str, Any]) -> str:
    terminal = "" in node
    leaves = sorted(ch for ch, child in node.items() if ch and list(child) == [""])
    branches = [re.escape(ch) + _emit(child) for ch, child in sorted(node.items()) if ch and ch not in leaves]
    if len(leaves) == 1:
        branches.insert(0, re.escape(leaves[0]))
    elif leaves:
        branches.insert(0, "[" + "".join(re.escape(ch) for ch in leaves) + "]")
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(" + "|".join(branches) + ")"
    if terminal:
        return body + "?" if len(branches) == 1 and _atomic(body) else f"({body})?"
    return body


def _atomic(body: str) -> bool:
    """True when ``body`` is one character, one escaped character, one class, or one group."""
    if re.fullmatch(r"\\?.|\[[^\]]*\]", body):
        return True
    if body.startswith("(") and body.endswith(")"):
        depth = 0
        for i, ch in enumerate(body):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(body) - 1:
                return False
        return True
    return False


def diagnosis_regex(
    mode: str = "format", codes: Iterable[str] | None = None, *, prefill: str = "", dotted: bool = False,
    form: str | None = None,
) -> str:
    """The regex the answer after ``prefill`` must match: reasoning, ``</think>``, then one diagnosis block.

    ``mode="format"``: any well-formed code written in ``form`` (:data:`CODE_FORMS`; without it undotted, or dotted
    with ``dotted=True``); ``mode="billable"``: one of ``codes``, already in their written forms (see
    :func:`code_strings`). When the prefill does not open ``<think>`` the answer must open it itself.
    """
    form = check_code_form(form) if form else ("dotted" if dotted else "undotted")
    if mode == "format":
        code = {"either": FORMAT_CODE_EITHER, "dotted": FORMAT_CODE_DOTTED, "undotted": FORMAT_CODE}[form]
    elif mode == "billable":
        listed = list(codes or [])
        if not listed:
            raise UsageError("structured output 'billable' needs the code list of the knowledge base")
        code = trie_regex(listed)
    else:
        raise UsageError(f"unknown structured output mode {mode!r}: use off, format or billable")
    head = "" if THINK_OPEN in prefill else _WS + re.escape(THINK_OPEN)
    return f"{head}{_THINK_TEXT}{re.escape(THINK_CLOSE)}{_WS}{re.escape(OPEN_TAG)}({code}){re.escape(CLOSE_TAG)}{_WS}"


def vllm_structured_kwargs(regex: str) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments that impose ``regex`` with the installed vLLM.

    vLLM >= 0.12: ``{"structured_outputs": StructuredOutputsParams(regex=...)}``; vLLM 0.8 - 0.11:
    ``{"guided_decoding": GuidedDecodingParams(regex=...)}``.
    """
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(regex=regex)}
    return {"structured_outputs": StructuredOutputsParams(regex=regex)}


def server_structured_body(regex: str, field_name: str = "structured_outputs") -> dict[str, Any]:
    """The extra request body that asks an OpenAI-compatible server for ``regex``-constrained output.

    ``structured_outputs`` (vLLM >= 0.12), ``guided_regex`` (vLLM < 0.12) or ``regex`` (SGLang).
    """
    if field_name == "structured_outputs":
        return {"structured_outputs": {"regex": regex}}
    if field_name in ("guided_regex", "regex"):
        return {field_name: regex}
    raise UsageError(f"unknown structured output field {field_name!r}: use structured_outputs, guided_regex or regex")
