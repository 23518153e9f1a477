"""gesund.bund.de (the paper's source): plain-language German explanations per ICD-10-GM code.

URL scheme: ``https://gesund.bund.de/icd-code-suche/<code>`` with the code lower-cased and the dot written as a
dash, e.g. ``J45.0`` → ``/icd-code-suche/j45-0``. The explanation sits in the page's ``<article>`` inside
``<div data-text-key="J45.0">`` (one such block per code the page explains, a category page may carry its
subcodes too); the code's title is the heading before the block, else the ``<title>`` ("ICD-10-Code: …").

ICD-10-GM codes have at most five characters (``S82.28``) and only digits after the category, so a CM code is asked
for on the page of its longest GM-shaped prefix. How a page maps to a CM code is recorded per stored row:

- ``exact``: the same code, up to four characters (GM and CM agree to the fourth character for most codes);
- ``exact_5th``: the same five-character code (its fifth character may differ in meaning between GM and CM);
- ``prefix4``: the page of the CM code's four-character prefix (the CM code itself has no GM page);
- ``parent``: the page of the CM code's three-character category.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from ..codes import dotted, normalize
from .quality import page_problem, text_problem
from .sources import Description, Parsed, SymptomSource

_GM_SHAPE = re.compile(r"^[A-Z]\d\d(\d{1,2})?$")
_SLUG = re.compile(r"^([a-z]\d\d)(?:-(\d{1,2}))?(?:\.html?)?$", re.IGNORECASE)
_TITLE_PREFIX = re.compile(r"^\s*ICD-10-Code:\s*", re.IGNORECASE)
_TITLE_SUFFIX = re.compile(r"\s*[|–-]\s*gesund\.bund\.de\s*$", re.IGNORECASE)
_CODE_PREFIX = re.compile(r"^[A-Z]\d\d(\.\d{1,2})?\s*[:–-]\s*")


def gm_key(code: str) -> str | None:
    """The undotted ICD-10-GM page key for a CM code: its longest GM-shaped prefix (at most 5 characters)."""
    key = normalize(code)
    for n in range(min(len(key), 5), 2, -1):
        if _GM_SHAPE.match(key[:n]):
            return key[:n]
    return None


def mapping(cm_nodot: str, gm_nodot: str) -> str:
    """How a GM page relates to the CM code it is stored for (see the module docstring)."""
    if cm_nodot == gm_nodot:
        return "exact" if len(cm_nodot) <= 4 else "exact_5th"
    if len(gm_nodot) == 4 and cm_nodot.startswith(gm_nodot):
        return "prefix4"
    return "parent"


def _clean_title(text: str) -> str:
    title = _TITLE_SUFFIX.sub("", _TITLE_PREFIX.sub("", " ".join(text.split()))).strip()
    return _CODE_PREFIX.sub("", title).strip() or title


def _block_text(block: Tag) -> str:
    parts = [" ".join(p.get_text(" ").split()) for p in block.find_all(["p", "li"])]
    parts = [p for p in parts if p]
    return "\n".join(parts) if parts else " ".join(block.get_text(" ").split())


def _block_title(block: Tag, soup: BeautifulSoup) -> str | None:
    heading = block.find_previous(["h1", "h2", "h3"])
    if heading is not None and heading.get_text(strip=True):
        return _clean_title(heading.get_text(" "))
    if soup.title and soup.title.string:
        return _clean_title(soup.title.string)
    return None


class GesundBund(SymptomSource):
    """gesund.bund.de ICD-Code-Suche pages (German)."""

    name = "gesund"
    language = "de"
    default_base_url = "https://gesund.bund.de"
    saved_patterns = ("*",)

    def page_key(self, code: str) -> str | None:
        return gm_key(code)

    def url_for(self, key: str) -> str:
        slug = dotted(key).lower().replace(".", "-")
        return f"{self.base_url}/icd-code-suche/{slug}"

    def parse(self, text: str, *, url: str, key: str, wanted: dict[str, str]) -> Parsed:
        if not text or not text.strip():
            return Parsed(reason="empty_page")
        soup = BeautifulSoup(text, "lxml")
        root = soup.find("article") or soup
        blocks: dict[str, tuple[str | None, str]] = {}
        for block in root.find_all(attrs={"data-text-key": True}):
            gm = normalize(str(block["data-text-key"]))
            body = _block_text(block)
            if _GM_SHAPE.match(gm) and gm not in blocks and text_problem(body) is None:
                blocks[gm] = (_block_title(block, soup), body)
        if not blocks:  # a bot wall, a soft error page or an empty page never has an explanation block
            return Parsed(reason=page_problem(text) or "no_description")
        out: dict[str, Description] = {}
        for gm, (title, body) in blocks.items():  # every code the page explains, stored under the same CM code
            out[gm] = Description(dotted(gm), dotted(gm), mapping(gm, gm), self.language, title, body, url)
        for cm in wanted:  # CM codes that asked for this page but have no block of their own: nearest prefix
            cm_nodot = normalize(cm)
            if cm_nodot in out:
                continue
            for n in range(min(len(cm_nodot), 5), 2, -1):
                if cm_nodot[:n] in blocks:
                    title, body = blocks[cm_nodot[:n]]
                    out[cm_nodot] = Description(dotted(cm_nodot), dotted(cm_nodot[:n]),
                                                mapping(cm_nodot, cm_nodot[:n]), self.language, title, body, url)
                    break
        return Parsed(descriptions=tuple(out.values()))

    def key_from_saved(self, path: Path, text: str) -> str | None:
        for name in (path.name, path.parent.name if path.stem == "index" else ""):
            match = _SLUG.match(name)
            if match:
                return normalize(match.group(1) + (match.group(2) or ""))
        soup = BeautifulSoup(text, "lxml")
        canonical = soup.find("link", rel="canonical")
        if canonical is not None and canonical.get("href"):
            match = _SLUG.match(str(canonical["href"]).rstrip("/").rsplit("/", 1)[-1])
            if match:
                return normalize(match.group(1) + (match.group(2) or ""))
        block = soup.find(attrs={"data-text-key": True})
        if block is not None:
            key = normalize(str(block["data-text-key"]))
            return key if _GM_SHAPE.match(key) else None
        return None
