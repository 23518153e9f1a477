"""What a symptom-description source is: its URL scheme, its parser, how its codes map to ICD-10-CM.

A source is one small module defining a :class:`SymptomSource` subclass, found by name through
:mod:`icdreason.scrape.registry`; adding a third source is one more file and one line there.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Description:
    """One symptom description found on a page, for one ICD-10-CM code."""

    code: str                 # dotted ICD-10-CM code it is stored for
    source_code: str          # the source's own key (ICD-10-GM code, the code asked for)
    mapping: str              # exact | exact_5th | prefix4 | parent
    language: str
    title: str | None
    text: str
    url: str | None

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Parsed:
    """What a parser made of one page: descriptions, or the reason there are none."""

    descriptions: tuple[Description, ...] = ()
    reason: str | None = None     # no_description | empty_page | captcha | error_page | malformed


class SymptomSource(ABC):
    """Base class of a symptom source. Subclasses set the class attributes and implement the three methods."""

    name: str = ""
    language: str = ""
    default_base_url: str = ""
    #: File name patterns that :meth:`parse_saved` understands (for ``--from-dir``).
    saved_patterns: tuple[str, ...] = ("*",)

    def __init__(self, base_url: str | None = None):
        self.base_url = (base_url or self.default_base_url).rstrip("/")

    @abstractmethod
    def page_key(self, code: str) -> str | None:
        """The source's key (e.g. the ICD-10-GM code) of the page to fetch for a dotted CM code; None: no page."""

    @abstractmethod
    def url_for(self, key: str) -> str:
        """The URL of the page with this key."""

    @abstractmethod
    def parse(self, text: str, *, url: str, key: str, wanted: dict[str, str]) -> Parsed:
        """Descriptions on a fetched page. ``wanted`` maps dotted CM codes (that asked for this page) to their
        mapping; a parser may also return descriptions for other codes the page covers when the KB knows them."""

    @abstractmethod
    def key_from_saved(self, path: Path, text: str) -> str | None:
        """The page key of a saved page (from its file name or content), for ``--from-dir``."""
