"""Reading an OpenAI-compatible server's answers: the texts, finish reasons and token counts of a chat or
completions response, whatever shape its ``content`` takes, and the parts of an error answer the engine reports.

A ``content`` may be a string, the list-of-parts shape (``[{"type": "text", "text": ...}]``, joined) or null (empty;
a server-side reasoning parser's ``reasoning_content`` is put back in front of ``</think>``); anything else, or a
response of another shape, raises :class:`RequestFailed` for that one note.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RequestFailed", "read_answer", "excerpt", "retry_after"]


class RequestFailed(Exception):
    """One request failed for good (retries exhausted or a non-retryable answer). ``server_fault``: because of
    the server, whatever the note (no connection, timeouts, 5xx, 401/403/404)."""

    def __init__(self, message: str, *, server_fault: bool = False, url: str | None = None):
        super().__init__(message)
        self.server_fault = server_fault
        self.url = url


class _Shape(ValueError):
    """A response of a shape this engine cannot read (for one note)."""


def read_answer(data: Any, url: str, wanted: int) -> tuple[list[str], list[str], int, int]:
    """(texts, finish reasons, prompt tokens, completion tokens) of a chat or completions response; a response of
    another shape raises :class:`RequestFailed` for this note."""
    try:
        if not isinstance(data, dict):
            raise _Shape(f"a JSON {type(data).__name__}, not an object")
        choices = data.get("choices") or []
        if not isinstance(choices, list):
            raise _Shape("choices that are not a list")
        if not choices:
            raise RequestFailed(f"{url} answered without choices")
        texts, reasons = [], []
        for choice in choices[:wanted]:
            if not isinstance(choice, dict):
                raise _Shape("a choice that is not an object")
            texts.append(_choice_text(choice))
            reason = choice.get("finish_reason")
            reasons.append(reason if isinstance(reason, str) and reason else "stop")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return texts, reasons, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    except _Shape as exc:
        raise RequestFailed(f"{url} answered with {exc}") from None


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def _as_text(value: Any) -> str:
    """A ``content`` (or ``text``, ``reasoning_content``) value as text: a string, null (empty), or a list of parts
    whose text parts are joined (``[{"type": "text", "text": ...}]``, OpenAI's shape; other parts are left out)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for part in value:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif not isinstance(part, dict):
                raise _Shape(f"a content part of type {type(part).__name__}, not text")
        return "".join(out)
    raise _Shape(f"content of type {type(value).__name__}, not text")


def _choice_text(choice: dict) -> str:
    if "text" in choice:  # /v1/completions
        return _as_text(choice.get("text"))
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise _Shape("a message that is not an object")
    content = _as_text(message.get("content"))
    reasoning = _as_text(message.get("reasoning_content") or message.get("reasoning"))
    if reasoning and "</think>" not in content:
        return f"{reasoning}</think>{content}"
    return content


def excerpt(response) -> str:
    """The first 200 characters of an error answer's body, whitespace collapsed (else the reason phrase)."""
    try:
        text = response.text
    except Exception:
        text = ""
    return " ".join(text.split())[:200] or response.reason_phrase


def retry_after(response) -> float | None:
    """Seconds to wait from a ``Retry-After`` header in seconds; None when absent or not a number."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
