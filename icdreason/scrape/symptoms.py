"""Scrape symptom descriptions into the knowledge base's ``symptoms`` table: choose codes, fetch, parse, store.

Resumable: a code already stored (or answered for good: not found, disallowed) is skipped unless ``refresh``; each
page is written in its own transaction, so an interrupted run loses nothing. Transient failures (timeouts, 5xx,
429, captcha walls) are logged and tried again on the next run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..codes import dotted, normalize
from ..errors import InputError, UsageError
from ..kb.scraped import ScrapeLogEntry, SymptomRow
from ..kb.store import KnowledgeBase
from ..tables import read_codes_file  # noqa: F401  (re-exported: one rule for scrape --codes and validate --file)
from .http import FetchOptions, FetchResult, PoliteFetcher
from .limits import MAX_DESCRIPTION_CHARS, MAX_PAGE_BYTES, MAX_TITLE_CHARS, TooLarge, cap_text, read_file_capped
from .sources import Description, Parsed, SymptomSource

#: scrape_log outcomes that a later run does not try again (unless --refresh).
FINAL_OUTCOMES = ("stored", "not_found", "skipped")
#: Parse problems that mean "we are being blocked right now": retried on the next run.
TRANSIENT_PARSE_REASONS = frozenset({"captcha"})

#: Saved files larger than this are not pages (a database, an archive) and are skipped by --from-dir: the same cap as
#: fetched answers (:mod:`.limits`).
MAX_SAVED_BYTES = MAX_PAGE_BYTES

OnPage = Callable[[str, str], None]


@dataclass
class ScrapeSummary:
    """What a scrape run did: pages fetched, rows stored, and the pages skipped/not found/failed by reason."""

    source: str
    codes: int = 0                  # codes selected
    already: int = 0                # codes skipped because a previous run answered them
    pages: int = 0                  # pages planned this run
    fetched: int = 0                # pages that came back 200 and were parsed
    stored: int = 0                 # description rows written
    requests: int = 0               # HTTP requests made (robots.txt, retries and redirects included)
    not_found: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    interrupted: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "not_found": dict(self.not_found), "skipped": dict(self.skipped),
                "failed": dict(self.failed)}


# -- choosing codes -------------------------------------------------------------------------------------------------
def select_codes(kb: KnowledgeBase, *, codes: Iterable[str] | None = None, chapter: int | None = None,
                 all_codes: bool = False, max_chars: int = 5) -> tuple[list[str], list[str]]:
    """(dotted codes to scrape, inputs that are not codes of the knowledge base).

    ``--chapter``/``--all`` take categories and subcategories up to ``max_chars`` characters (undotted): longer
    codes inherit their parent's description through the hierarchy.
    """
    if sum(x is not None and x is not False for x in (codes, chapter, all_codes or None)) != 1:
        raise UsageError("choose which codes to scrape: exactly one of --codes FILE, --chapter N or --all")
    if codes is not None:
        chosen, unknown = [], []
        for raw in codes:
            info = kb.lookup(raw) if normalize(raw) else None
            if info is None or info.kind in ("chapter", "block"):
                unknown.append(raw)
            elif info.code not in chosen:
                chosen.append(info.code)
        return chosen, unknown
    chosen = kb.codes_up_to(max_chars, chapter=chapter)
    if chapter is not None and not chosen:
        raise UsageError(f"chapter {chapter} has no codes: choose a chapter between 1 and 22")
    return chosen, []


def done_codes(kb: KnowledgeBase, source: str) -> set[str]:
    """Dotted codes a previous run answered for good (stored, not found, disallowed)."""
    return kb.symptom_codes(source) | kb.logged_codes(source, FINAL_OUTCOMES)


def plan_pages(source: SymptomSource, codes: list[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """({page key: {dotted CM code: ''}}, codes without any page at this source)."""
    pages: dict[str, dict[str, str]] = {}
    orphans = []
    for code in codes:
        key = source.page_key(code)
        if key is None:
            orphans.append(code)
        else:
            pages.setdefault(key, {})[code] = ""
    return pages, orphans


# -- writing --------------------------------------------------------------------------------------------------------
def _row(source: str, found: Description, status: int | None) -> SymptomRow:
    """The row stored for a description: text and title cut to the caps of :mod:`.limits`."""
    title = cap_text(found.title, MAX_TITLE_CHARS) if found.title else found.title
    return SymptomRow(found.code, source, found.source_code, found.mapping, found.language, title,
                      cap_text(found.text, MAX_DESCRIPTION_CHARS), found.url, status, found.content_hash)


def record_page(kb: KnowledgeBase, source: SymptomSource, key: str, wanted: dict[str, str], result: FetchResult,
                summary: ScrapeSummary) -> str:
    """Parse one fetched page and write its rows and log entries in one transaction; returns the page outcome."""
    url = result.final_url or result.url
    parsed: Parsed | None = None
    if result.ok:
        parsed = source.parse(result.text or "", url=url, key=key, wanted=wanted)
        summary.fetched += 1
    name, status = source.name, result.status
    if parsed is not None and parsed.descriptions:
        kept = [d for d in parsed.descriptions if kb.index.exists(d.code)]
        log = [ScrapeLogEntry(name, d.code, url, "stored", d.mapping, status) for d in kept]
        log += [ScrapeLogEntry(name, code, url, "not_found", "no_block_for_code", status)
                for code in wanted if not any(d.code == code for d in kept)]
        kb.record_scrape([_row(name, d, status) for d in kept], log)
        summary.stored += len(kept)
        return "stored" if kept else "not_found"
    if parsed is not None:
        reason = parsed.reason or "no_description"
        outcome = "failed" if reason in TRANSIENT_PARSE_REASONS else "not_found"
    else:
        reason, outcome = result.reason or "unknown", result.outcome
    kb.record_scrape(log=[ScrapeLogEntry(name, code, url, outcome, reason, status) for code in wanted])
    {"failed": summary.failed, "skipped": summary.skipped}.get(outcome, summary.not_found)[reason] += 1
    return outcome


# -- running --------------------------------------------------------------------------------------------------------
def scrape_symptoms(kb: KnowledgeBase, source: SymptomSource, codes: list[str], *, options: FetchOptions | None = None,
                    concurrency: int = 2, refresh: bool = False, on_plan: Callable[[int], None] | None = None,
                    on_page: OnPage | None = None, transport=None) -> ScrapeSummary:
    """Fetch and store descriptions for ``codes`` (dotted, from :func:`select_codes`) from ``source``.

    ``kb`` must be opened writable. ``on_plan(n_pages)`` is called once, ``on_page(key, outcome)`` after each page.
    A KeyboardInterrupt stops the run after the pages in flight; everything already written stays.
    """
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    summary = ScrapeSummary(source=source.name, codes=len(codes))
    done = set() if refresh else done_codes(kb, source.name)
    todo = [c for c in codes if c not in done]
    summary.already = len(codes) - len(todo)
    pages, orphans = plan_pages(source, todo)
    if orphans:
        kb.record_scrape(log=[ScrapeLogEntry(source.name, code, None, "skipped", "no_page_at_source", None)
                              for code in orphans])
        summary.skipped["no_page_at_source"] += len(orphans)
    summary.pages = len(pages)
    if on_plan:
        on_plan(len(pages))
    fetcher = PoliteFetcher(options, transport=transport)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="icdreason-scrape")
    try:
        queue = iter(pages.items())
        running: dict = {}

        def submit_next() -> None:
            item = next(queue, None)
            if item is not None:
                running[pool.submit(fetcher.fetch, source.url_for(item[0]))] = item

        for _ in range(concurrency * 2):
            submit_next()
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                key, wanted = running.pop(future)
                outcome = record_page(kb, source, key, wanted, future.result(), summary)
                if on_page:
                    on_page(key, outcome)
                submit_next()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        summary.requests = fetcher.requests_made
        fetcher.close()
    return summary


def scrape_from_dir(kb: KnowledgeBase, source: SymptomSource, directory: Path, *, refresh: bool = False,
                    on_plan: Callable[[int], None] | None = None, on_page: OnPage | None = None) -> ScrapeSummary:
    """Parse saved pages (a ``wget`` mirror, saved JSON answers) with the source's parser and store them."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory: pass the folder holding the saved pages")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.name != "robots.txt")
    summary = ScrapeSummary(source=source.name)
    done = set() if refresh else kb.symptom_codes(source.name)
    if on_plan:
        on_plan(len(files))
    for path in files:
        try:
            text = read_file_capped(path, MAX_SAVED_BYTES).decode("utf-8", errors="replace")
        except TooLarge:
            summary.skipped["too_large"] += 1
            if on_page:
                on_page(path.name, "skipped")
            continue
        key = source.key_from_saved(path, text)
        if key is None:
            summary.skipped["unrecognised_file"] += 1
            outcome = "skipped"
        elif dotted(key) in done:
            summary.already += 1
            outcome = "already"
        else:
            summary.pages += 1
            summary.codes += 1
            result = FetchResult(source.url_for(key), "ok", text=text, final_url=source.url_for(key))
            outcome = record_page(kb, source, key, {dotted(key): ""}, result, summary)
        if on_page:
            on_page(path.name, outcome)
    return summary
