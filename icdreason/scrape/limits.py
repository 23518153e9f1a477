"""How much the scraper reads and stores: one set of caps for fetched answers and saved pages.

- :data:`MAX_PAGE_BYTES`: a page or an answer (after decompression) larger than this is read no further and logged
  as ``too_large`` (a symptom page is a few kB; this stops a runaway or hostile server, and a gzip bomb, early).
  Saved pages given to ``--from-dir`` are read through the same cap.
- :data:`MAX_DOCUMENT_BYTES`: the same for a document fetched on purpose (the coding-guidelines PDF).
- :data:`MAX_DESCRIPTION_CHARS` / :data:`MAX_TITLE_CHARS`: a stored symptom description (and its title) is cut at a
  word boundary and ends with `` …``: it is embedded in prompts, rewards and every prediction record.

Documented in ``docs/usage-scrape.md`` (*Limits*).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["MAX_PAGE_BYTES", "MAX_DOCUMENT_BYTES", "MAX_DESCRIPTION_CHARS", "MAX_TITLE_CHARS", "ACCEPT_ENCODING",
           "TooLarge", "UnsupportedEncoding", "read_capped", "decode_capped", "read_file_capped", "cap_text"]

MAX_PAGE_BYTES = 5_000_000
MAX_DOCUMENT_BYTES = 50_000_000
MAX_DESCRIPTION_CHARS = 10_000
MAX_TITLE_CHARS = 300
_CHUNK = 1 << 16
#: The content encodings the fetcher asks for, and the only ones it decodes (each with a bounded output).
ACCEPT_ENCODING = "gzip, deflate"


class TooLarge(Exception):
    """More bytes than the cap arrived; reading stopped there."""


class UnsupportedEncoding(Exception):
    """The answer uses a content encoding that was not asked for (and is not decoded)."""


def read_capped(chunks: Iterable[bytes], limit: int) -> bytes:
    """The bytes of ``chunks`` joined, stopping with :class:`TooLarge` as soon as they pass ``limit``: a body is never
    held (or decompressed) beyond the cap."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"more than {limit:,} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_capped(raw: Iterable[bytes], content_encoding: str | None, limit: int) -> bytes:
    """The body of an HTTP answer from its raw (still encoded) chunks, decompressed at most :data:`_CHUNK` bytes at a
    time and stopped with :class:`TooLarge` once either the raw or the decoded size passes ``limit``: a gzip bomb
    (half a megabyte that inflates to gigabytes) costs no more than ``limit`` bytes of memory."""
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    encodings = [e for e in encodings if e != "identity"]
    raw_size = 0

    def counted() -> Iterator[bytes]:
        nonlocal raw_size
        for chunk in raw:
            raw_size += len(chunk)
            if raw_size > limit:
                raise TooLarge(f"more than {limit:,} bytes")
            yield chunk

    if not encodings:
        return read_capped(counted(), limit)
    if len(encodings) > 1 or encodings[0] not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedEncoding(content_encoding)
    return read_capped(_inflate(counted(), gzip=encodings[0] != "deflate"), limit)


def _inflate(chunks: Iterable[bytes], *, gzip: bool) -> Iterator[bytes]:
    """Decompressed pieces of at most :data:`_CHUNK` bytes (``deflate`` may come with or without its zlib header)."""
    inflater = zlib.decompressobj(31 if gzip else 15)
    first = True
    for chunk in chunks:
        data = chunk
        while data:
            try:
                piece = inflater.decompress(data, _CHUNK)
            except zlib.error:
                if gzip or not first:
                    raise
                inflater, first = zlib.decompressobj(-15), False  # raw deflate, as some servers send it
                continue
            first = False
            if piece:
                yield piece
            data = inflater.unconsumed_tail
    while not inflater.eof:
        piece = inflater.decompress(b"", _CHUNK)
        if not piece:
            break
        yield piece


def read_file_capped(path: Path, limit: int = MAX_PAGE_BYTES) -> bytes:
    """A saved file's bytes through :func:`read_capped`."""
    with open(path, "rb") as fh:
        return read_capped(iter(lambda: fh.read(_CHUNK), b""), limit)


def cap_text(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters: cut at the last word boundary and ended with `` …`` when longer."""
    if len(text) <= limit:
        return text
    head = text[:limit - 2]
    cut = max(head.rfind(" "), head.rfind("\n"))
    if cut > limit // 2:
        head = head[:cut]
    return head.rstrip() + " …"
