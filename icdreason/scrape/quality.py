"""Recognise pages that must never be stored as a description: empty pages, captchas/bot walls and error pages."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

#: Phrases of bot walls and captcha pages (English and German), matched case-insensitively in the visible text,
#: the title or the markup.
CAPTCHA_MARKERS = (
    "captcha", "g-recaptcha", "h-captcha", "hcaptcha", "cf-challenge", "challenge-platform", "just a moment...",
    "verify you are human", "are you a robot", "unusual traffic", "access denied", "sind sie ein mensch",
    "bitte bestätigen sie, dass sie kein roboter sind", "zugriff verweigert",
)
#: Titles/headings of error pages served with status 200 ("soft 404s").
ERROR_TITLES = re.compile(
    r"\b(404|403|500|502|503)\b|not found|page not found|seite nicht gefunden|nicht gefunden|fehlerseite|"
    r"\berror\b|\bfehler\b|wartungsarbeiten|maintenance",
    re.IGNORECASE,
)
MIN_TEXT_CHARS = 40


def visible_text(soup: BeautifulSoup) -> str:
    """The page's visible text with whitespace collapsed (scripts, styles and templates removed)."""
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return " ".join(soup.get_text(" ").split())


def page_problem(html: str | None) -> str | None:
    """``empty_page``, ``captcha`` or ``error_page`` when the page is one of those, else None."""
    if html is None or not html.strip():
        return "empty_page"
    lowered = html.lower()
    soup = BeautifulSoup(html, "lxml")
    title = " ".join(t.get_text(" ") for t in soup.find_all(["title", "h1"])[:2])
    text = visible_text(soup)
    haystack = f"{title} {text}".lower()
    if any(marker in haystack for marker in CAPTCHA_MARKERS) or "g-recaptcha" in lowered or "hcaptcha" in lowered:
        return "captcha"
    if title and ERROR_TITLES.search(title):
        return "error_page"
    if len(text) < MIN_TEXT_CHARS:
        return "empty_page"
    return None


def text_problem(text: str | None) -> str | None:
    """Why an extracted description is unusable (``empty_description``/``captcha``), or None when it is fine."""
    if text is None or len(text.strip()) < MIN_TEXT_CHARS:
        return "empty_description"
    lowered = text.lower()
    if any(marker in lowered for marker in CAPTCHA_MARKERS):
        return "captcha"
    return None
