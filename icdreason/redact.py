"""Keeping secrets out of what icdreason stores and prints: the one masking function for URLs and command lines, and
the scrubbing of known secret values from text a server sent.

- :func:`mask` hides the ``user:password@`` part of every URL in a text (a URL, a message, a command line):
  ``http://alice:pw@host/v1`` becomes ``http://***@host/v1``. The run log's command and options, lock files, records,
  error messages and what the CLI prints go through it.
- :func:`scrub` removes given secret values (an API key, the passwords of ``--base-url``, and the HTTP Basic token a
  client builds from them) from text that came from a server, since a server may echo a request's headers in an error
  body, and that text is stored in records.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "mask", "scrub", "url_secrets"]

MASK = "***"
#: ``scheme://userinfo@`` in any text: the userinfo runs to the last ``@`` of the authority (a password may hold an
#: unescaped ``@``), with no whitespace, slash or quote in it.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#\"'<>]+)@")


def mask(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***`` (a URL, a message, a command line)."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def url_secrets(url: str) -> list[str]:
    """The secrets a URL carries: its password (as written and decoded) and the Basic token built from it."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return []
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [s for s in {parts.password or "", password, basic} if len(s) >= 4]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret value (at least 4 characters long) replaced by ``***``, and URLs masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return mask(text)
