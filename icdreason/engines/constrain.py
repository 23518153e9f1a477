"""Constrained decoding inside ``<diagnosis>``: only billable codes from the knowledge base can be produced.

Code form. Inside the tag the model writes the code **undotted** (``M5116``), as in the reference model's output and
in the MIMIC-IV labels it was trained on; the paper's format check also removes the dot before matching. Pass
``dotted=True`` for prompts that ask for ``M51.16``.

Two builders share one code list:

- :class:`DiagnosisConstraint` + :class:`DiagnosisLogitsProcessor` for Hugging Face ``generate``. Outside the
  diagnosis block generation is free. Once the model has written ``<diagnosis>``, each step only allows tokens that
  extend the text towards a billable code (a trie over the code strings, matched against each token's decoded
  text, so it works whatever way the tokenizer splits codes); after a complete code ``</diagnosis>`` is forced, then
  end-of-sequence. Tokens that would open the tag and already carry a bad code start (``<diagnosis>xyz``) are banned.
- :func:`diagnosis_regex` for vLLM structured output (``StructuredOutputsParams(regex=...)`` in vLLM >= 0.12,
  ``GuidedDecodingParams(regex=...)`` before): the whole answer after the prefill must be
  ``…</think> <diagnosis>CODE</diagnosis>``, with ``CODE`` either any well-formed code (``mode="format"``) or a
  billable code (``mode="billable"``, the code list as a compact trie-shaped regex).
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


def billable_code_strings(kb, *, dotted: bool = False) -> list[str]:
    """Every billable code of the knowledge base as the model writes it inside the tag (undotted by default)."""
    if kb is None:
        raise UsageError("--constrain needs the knowledge base: build it with `icdreason kb build` or pass --kb")
    return code_strings(kb.billable_codes(), dotted=dotted)


def code_strings(codes: Iterable[str], *, dotted: bool = False) -> list[str]:
    """Normalise codes to the written form: ``M5116`` (or ``M51.16`` with ``dotted=True``), sorted and unique."""
    out = {to_dotted(c) if dotted else normalize(c) for c in codes if c and c.strip()}
    return sorted(out)


# -- Hugging Face generate -------------------------------------------------------------------------------------------


class DiagnosisConstraint:
    """What each decoding state allows, precomputed once per tokenizer and code list (reuse it across batches)."""

    def __init__(self, tokenizer, codes: Iterable[str]):
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
        eos = tokenizer.eos_token_id
        if eos is None:
            raise UsageError("--constrain needs a tokenizer with an end-of-sequence token")
        self.eos_id: int = eos
        self._allowed: dict[str, list[int]] = {}
        self.banned_any, self.banned_after = self._bans()

    def _bad_start(self, rest: str) -> bool:
        return rest not in self.prefixes

    def _bans(self) -> tuple[list[int], dict[int, list[int]]]:
        """Tokens that would write ``<diagnosis>`` followed by text that cannot start a billable code.

        ``banned_any`` holds tokens that contain the whole tag; ``banned_after[k]`` tokens that complete a tag whose
        first ``k`` characters end the text so far.
        """
        banned_any = [
            i for i, s in enumerate(self.strings) if OPEN_TAG in s and self._bad_start(s.split(OPEN_TAG, 1)[1])
        ]
        banned_after: dict[int, list[int]] = {}
        for k in range(1, len(OPEN_TAG)):
            need = OPEN_TAG[k:]
            ids = [i for i, s in enumerate(self.strings) if s.startswith(need) and self._bad_start(s[len(need):])]
            if ids:
                banned_after[k] = ids
        return banned_any, banned_after

    def allowed(self, partial: str) -> list[int]:
        """Token ids that may follow ``<diagnosis>`` + ``partial`` (the first closing token once the code is whole)."""
        hit = self._allowed.get(partial)
        if hit is None:
            hit = [i for i, s in self.code_tokens if partial + s in self.prefixes]
            if partial in self.codes:
                hit.append(self.close_ids[0])
            self._allowed[partial] = hit
        return hit

    def processor(self, prefills: list[str] | str = "") -> DiagnosisLogitsProcessor:
        """A fresh logits processor for one ``generate`` call; ``prefills`` gives each row's prefill (or one for all)."""
        return DiagnosisLogitsProcessor(self, prefills=prefills)


FREE, CODE, CLOSE, DONE = "free", "code", "close", "done"


@dataclass
class _Row:
    mode: str = FREE
    tail: str = ""  # the last characters of free text, to spot the opening tag across tokens
    partial: str = ""  # the code written so far inside the tag
    close_at: int = 0  # next position in the closing tag's token ids


@dataclass
class DiagnosisLogitsProcessor:
    """A ``transformers`` logits processor enforcing :class:`DiagnosisConstraint` on every row of one generate call.

    Rows are the ``batch * num_return_sequences`` sequences; the first call sees the (left-padded) prompt, every
    later call one new token per row. ``prefills`` is the text each row's answer starts with (one per row, or one
    string for all), so that a prefill that already opened the tag is honoured.
    """

    constraint: DiagnosisConstraint
    prefills: list[str] | str = ""
    rows: list[_Row] = field(default_factory=list)
    seen: int = -1

    def __call__(self, input_ids, scores):
        import torch

        if self.seen < 0:
            count = input_ids.shape[0]
            prefills = [self.prefills] * count if isinstance(self.prefills, str) else list(self.prefills)
            if len(prefills) != count:
                raise ValueError(f"{len(prefills)} prefills for {count} rows")
            self.rows = [self._start(p) for p in prefills]
        else:
            new = input_ids[:, self.seen :].tolist()
            for row, tokens in zip(self.rows, new):
                for token in tokens:
                    self._advance(row, token)
        self.seen = input_ids.shape[1]
        c = self.constraint
        for r, row in enumerate(self.rows):
            if row.mode == FREE:
                k = _tag_prefix_len(row.tail)
                banned = c.banned_any + c.banned_after[k] if k in c.banned_after else c.banned_any
                if banned:
                    scores[r, banned] = -float("inf")
                continue
            if row.mode == CODE:
                allowed = c.allowed(row.partial) or c.close_ids[:1]
            elif row.mode == CLOSE:
                allowed = [c.close_ids[row.close_at]]
            else:
                allowed = [c.eos_id]
            keep = scores[r, allowed].clone()
            scores[r, :] = -float("inf")
            scores[r, allowed] = torch.where(torch.isfinite(keep), keep, torch.zeros_like(keep))
        return scores

    def _start(self, prefill: str) -> _Row:
        row = _Row()
        if prefill:
            self._feed_text(row, prefill)
        return row

    def _feed_text(self, row: _Row, text: str) -> None:
        if row.mode != FREE:
            return
        joined = row.tail + text
        at = joined.find(OPEN_TAG)
        if at >= 0:
            row.mode, row.partial = CODE, joined[at + len(OPEN_TAG) :]
        else:
            row.tail = joined[-(len(OPEN_TAG) - 1) :]

    def _advance(self, row: _Row, token: int) -> None:
        c = self.constraint
        if row.mode == FREE:
            self._feed_text(row, c.strings[token] if token < c.vocab_size else "")
        elif row.mode == CODE:
            if token == c.close_ids[0]:
                row.mode, row.close_at = (CLOSE, 1) if len(c.close_ids) > 1 else (DONE, 0)
            else:
                row.partial += c.strings[token]
        elif row.mode == CLOSE:
            row.close_at += 1
            if row.close_at >= len(c.close_ids):
                row.mode = DONE


def _tag_prefix_len(tail: str) -> int:
    """Length of the longest proper prefix of ``<diagnosis>`` that ``tail`` ends with."""
    for k in range(min(len(tail), len(OPEN_TAG) - 1), 0, -1):
        if tail.endswith(OPEN_TAG[:k]):
            return k
    return 0


# -- vLLM structured output ------------------------------------------------------------------------------------------

#: Any well-formed ICD-10-CM code (the real structure, so that Z3A01 or M1A0110 are possible), undotted / dotted.
FORMAT_CODE = "[A-Z][0-9][A-Z0-9][A-Z0-9]{0,4}"
FORMAT_CODE_DOTTED = r"[A-Z][0-9][A-Z0-9](\.[A-Z0-9]{1,4})?"
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
    mode: str = "format", codes: Iterable[str] | None = None, *, prefill: str = "", dotted: bool = False
) -> str:
    """The regex the answer after ``prefill`` must match: reasoning, ``</think>``, then one diagnosis block.

    ``mode="format"``: any well-formed code; ``mode="billable"``: one of ``codes`` (written form, see module doc).
    When the prefill does not open ``<think>`` the answer must open it itself.
    """
    if mode == "format":
        code = FORMAT_CODE_DOTTED if dotted else FORMAT_CODE
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
