"""Text that every output can hold: lone surrogates replaced by U+FFFD.

JSON may carry half of a UTF-16 surrogate pair (``"\\ud83d"``), and file names that are not UTF-8 reach Python as
surrogate escapes; neither can be written to a UTF-8 file, an Arrow array or a DuckDB column. Tables are cleaned when
they are read (:mod:`icdreason.tables`) and records when they are written (:mod:`icdreason.records`), so such text
becomes a replacement character and a flag, never a crash.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REPLACEMENT", "encodable_text", "make_encodable", "may_hold_surrogates"]

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON escape of a surrogate (``\\ud83d``): only lines holding one can decode to a lone surrogate.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def encodable_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (the text itself when it has none)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def make_encodable(value: Any) -> tuple[Any, bool]:
    """(value, changed): strings, and the strings inside lists, tuples and dict keys and values, made encodable."""
    if isinstance(value, str):
        clean = encodable_text(value)
        return clean, clean is not value and clean != value
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            key2, c1 = make_encodable(key)
            item2, c2 = make_encodable(item)
            out[key2] = item2
            changed = changed or c1 or c2
        return (out, True) if changed else (value, False)
    if isinstance(value, (list, tuple)):
        items = [make_encodable(item) for item in value]
        if any(c for _, c in items):
            return type(value)(item for item, _ in items), True
        return value, False
    return value, False


def may_hold_surrogates(json_text: str) -> bool:
    """Whether decoding this JSON text may give a lone surrogate (it holds an escaped one)."""
    return _ESCAPED_SURROGATE.search(json_text) is not None
