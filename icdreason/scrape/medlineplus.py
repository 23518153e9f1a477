"""MedlinePlus Connect (US National Library of Medicine): English health-topic summaries for an ICD-10-CM code.

A documented web service: ``https://connect.medlineplus.gov/service`` with
``mainSearchCriteria.v.cs=2.16.840.1.113883.6.90`` (the ICD-10-CM code system OID), ``mainSearchCriteria.v.c=CODE``
and ``knowledgeResponseType=application/json``. The answer is an Atom feed rendered as JSON::

    {"feed": {"subtitle": {"_value": "MedlinePlus Connect results for ICD-10-CM I21.4"},
              "category": [{"scheme": "mainSearchCriteria.v.c", "term": "I21.4"}, ...],
              "entry": [{"title": {"_value": "Heart Attack"},
                         "link": [{"href": "https://medlineplus.gov/heartattack.html", "rel": "alternate"}],
                         "summary": {"_value": "<p>Each year almost 800,000 Americans have a heart attack…</p>"}}]}}

The service matches a code to topics itself (it falls back to broader codes when a specific one has no topic), so
each stored row is recorded with mapping ``exact`` for the code asked for; an empty ``entry`` list means no topic.
NLM asks clients to stay under 100 requests per minute per IP address; the default rate (1/s) respects that.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

from bs4 import BeautifulSoup

from ..codes import dotted, normalize
from .quality import page_problem, text_problem
from .sources import Description, Parsed, SymptomSource

ICD10CM_OID = "2.16.840.1.113883.6.90"
_SAVED_NAME = re.compile(r"^([A-Z]\d[A-Z0-9](?:\.?[A-Z0-9]{1,4})?)(?:\.json)?$", re.IGNORECASE)


def _value(node) -> str:
    """The text of an Atom-as-JSON node: ``{"_value": "..."}``, a plain string, or nothing."""
    if isinstance(node, dict):
        return str(node.get("_value") or "")
    return str(node) if isinstance(node, str) else ""


def _html_to_text(html: str) -> str:
    soup = BeautifulSoup(html, "lxml")
    parts = [" ".join(p.get_text(" ").split()) for p in soup.find_all(["p", "li"])]
    parts = [p for p in parts if p]
    return "\n".join(parts) if parts else " ".join(soup.get_text(" ").split())


class MedlinePlusConnect(SymptomSource):
    """MedlinePlus Connect health-topic summaries (English)."""

    name = "medlineplus"
    language = "en"
    default_base_url = "https://connect.medlineplus.gov/service"
    saved_patterns = ("*.json", "*")

    def page_key(self, code: str) -> str | None:
        return normalize(code) or None

    def url_for(self, key: str) -> str:
        query = urlencode({
            "mainSearchCriteria.v.cs": ICD10CM_OID,
            "mainSearchCriteria.v.c": dotted(key),
            "knowledgeResponseType": "application/json",
            "informationRecipient.languageCode.c": "en",
        })
        return f"{self.base_url}?{query}"

    def parse(self, text: str, *, url: str, key: str, wanted: dict[str, str]) -> Parsed:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            if not text or not text.strip():
                return Parsed(reason="empty_page")
            looks_json = text.lstrip().startswith(("{", "["))
            return Parsed(reason="malformed" if looks_json else page_problem(text) or "malformed")
        feed = data.get("feed") if isinstance(data, dict) else None
        if not isinstance(feed, dict):
            return Parsed(reason="malformed")
        entries = feed.get("entry") or []
        if isinstance(entries, dict):
            entries = [entries]
        topics = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            body = _html_to_text(_value(entry.get("summary")))
            if text_problem(body) is None:
                links = entry.get("link") or []
                href = next((link.get("href") for link in links if isinstance(link, dict) and link.get("href")), None)
                topics.append((_value(entry.get("title")).strip() or None, body, href))
        if not topics:
            return Parsed(reason="no_description")
        title, body, href = topics[0]
        code = dotted(key)
        codes = wanted or {code: "exact"}
        return Parsed(descriptions=tuple(
            Description(dotted(cm), code, "exact", self.language, title, body, href or url) for cm in codes
        ))

    def key_from_saved(self, path: Path, text: str) -> str | None:
        try:
            feed = json.loads(text).get("feed", {})
            for category in feed.get("category", []):
                if category.get("scheme") == "mainSearchCriteria.v.c" and category.get("term"):
                    return normalize(category["term"])
        except (json.JSONDecodeError, AttributeError, TypeError):
            pass
        match = _SAVED_NAME.match(path.name)
        return normalize(match.group(1)) if match else None
