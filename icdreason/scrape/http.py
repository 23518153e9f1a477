"""Polite HTTP fetching: robots.txt, a descriptive User-Agent, a per-host rate limit, retries with backoff.

:class:`PoliteFetcher` is thread-safe; run it from a small thread pool for bounded concurrency. Every call to
:meth:`PoliteFetcher.fetch` returns a :class:`FetchResult` (it never raises for network trouble): ``ok`` pages carry
their text, everything else carries a short machine-readable ``reason`` (``robots_disallowed``, ``http_404``,
``timeout``, ``off_host_redirect`` …) and whether trying again later may help (``transient``).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import urllib.robotparser
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from .. import __version__
from ..http_deadline import deadline, deadline_transport
from .limits import ACCEPT_ENCODING, MAX_PAGE_BYTES, TooLarge, UnsupportedEncoding, decode_capped

#: Identifies the tool and where to read about it; sites can contact or block it by this token.
DEFAULT_USER_AGENT = (
    f"icdreason/{__version__} (research scraper of public ICD-10 symptom descriptions; honours robots.txt; "
    "1 request/s per host)"
)
ROBOTS_AGENT = "icdreason"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class FetchResult:
    """The outcome of fetching one URL."""

    url: str
    outcome: str                    # ok | not_found | skipped | failed
    status: int | None = None       # the final HTTP status
    text: str | None = None         # the body, for ok pages
    final_url: str | None = None    # after in-host redirects
    reason: str | None = None       # why it is not ok
    attempts: int = 0
    content_type: str | None = None
    content: bytes | None = field(default=None, repr=False)  # the raw body, for ok responses (PDFs)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def transient(self) -> bool:
        """True when a later run may succeed (timeouts, 5xx, 429, connection errors)."""
        return self.outcome == "failed" and (self.reason or "").startswith(
            ("timeout", "connection_error", "http_5", "http_429", "robots_unreachable")
        )


@dataclass
class FetchOptions:
    """Politeness and robustness settings (defaults suit a public site; tests raise the rate)."""

    rate: float = 1.0               # requests per second per host
    timeout: float = 20.0           # seconds per request in all (a deadline, however slowly the server answers)
    retries: int = 3                # extra attempts on 429/5xx/timeouts
    backoff: float = 1.0            # first backoff in seconds; doubles each retry
    max_wait: float = 120.0         # longest single wait (Retry-After or backoff)
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    respect_robots: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    max_bytes: int = MAX_PAGE_BYTES  # a larger answer (after decompression) is read no further: "too_large"


class _HostClock:
    """Hands out request slots per host no closer together than ``1 / rate`` seconds (or the robots crawl-delay)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._lock = threading.Lock()

    def set_crawl_delay(self, host: str, seconds: float) -> None:
        with self._lock:
            self._delay[host] = seconds

    def wait(self, host: str) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + max(self.interval, self._delay.get(host, 0.0))
        if slot > now:
            time.sleep(slot - now)

    def push_back(self, host: str, seconds: float) -> None:
        """Delay every later request to ``host`` (after a 429 or 503 with Retry-After)."""
        with self._lock:
            self._next[host] = max(self._next.get(host, 0.0), time.monotonic() + seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class PoliteFetcher:
    """Fetch pages politely from a few hosts. Use as a context manager (it owns an ``httpx.Client``)."""

    def __init__(self, options: FetchOptions | None = None, *, transport: httpx.BaseTransport | None = None):
        self.options = options or FetchOptions()
        headers = {"User-Agent": self.options.user_agent, "Accept-Encoding": ACCEPT_ENCODING, **self.options.headers}
        self.client = httpx.Client(
            headers=headers, timeout=self.options.timeout, follow_redirects=False,
            transport=transport if transport is not None else deadline_transport(),
        )
        self.clock = _HostClock(self.options.rate)
        self._robots: dict[str, urllib.robotparser.RobotFileParser | str] = {}
        self._robots_lock = threading.Lock()
        self.requests_made = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> PoliteFetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- robots.txt ----------------------------------------------------------------------------------------------
    def _robots_for(self, url: str) -> urllib.robotparser.RobotFileParser | str:
        """The parsed robots.txt of the URL's origin, or a reason string when it could not be read (RFC 9309)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._robots_lock:
            if origin in self._robots:
                return self._robots[origin]
            parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
            result = self._get_with_retries(origin + "/robots.txt", check_robots=False)
            if result.status is not None and 200 <= result.status < 300:
                parser.parse((result.text or "").splitlines())
            elif result.status is not None and 400 <= result.status < 500:
                parser.allow_all = True          # no robots.txt: everything is allowed
            else:
                self._robots[origin] = "robots_unreachable"  # 5xx or no answer: assume complete disallow
                return self._robots[origin]
            delay = parser.crawl_delay(ROBOTS_AGENT)
            if delay:
                self.clock.set_crawl_delay(parts.netloc, float(delay))
            self._robots[origin] = parser
            return parser

    def allowed(self, url: str) -> str | None:
        """None when robots.txt lets us fetch ``url``, else the reason (``robots_disallowed``/``robots_unreachable``)."""
        if not self.options.respect_robots:
            return None
        robots = self._robots_for(url)
        if isinstance(robots, str):
            return robots
        return None if robots.can_fetch(ROBOTS_AGENT, url) else "robots_disallowed"

    # -- fetching ------------------------------------------------------------------------------------------------
    def fetch(self, url: str) -> FetchResult:
        """GET ``url`` with robots.txt, rate limit, retries and in-host redirects; never raises for network trouble."""
        return self._get_with_retries(url, check_robots=True)

    def _get_with_retries(self, url: str, *, check_robots: bool) -> FetchResult:
        opts = self.options
        host = urlsplit(url).netloc
        if check_robots:
            blocked = self.allowed(url)
            if blocked == "robots_disallowed":
                return FetchResult(url, "skipped", reason=blocked)
            if blocked:
                return FetchResult(url, "failed", reason=blocked)
        attempt = 0
        while True:
            attempt += 1
            result, wait = self._get_following(url, host, check_robots=check_robots)
            result = FetchResult(**{**result.__dict__, "attempts": attempt})
            retryable = result.outcome == "failed" and (
                result.status in RETRY_STATUSES or result.reason in ("timeout", "connection_error")
            )
            if not retryable or attempt > opts.retries:
                return result
            backoff = opts.backoff * (2 ** (attempt - 1)) * (1 + random.random() * 0.1)
            delay = min(opts.max_wait, wait if wait is not None else backoff)
            if wait is not None and wait > opts.max_wait:
                return FetchResult(**{**result.__dict__, "reason": f"{result.reason}_retry_after_too_long"})
            self.clock.push_back(host, delay)

    def _get(self, url: str) -> tuple[httpx.Response, bytes]:
        """GET ``url``; the body of a 2xx answer is streamed and read only up to ``max_bytes``, raw and after
        decompression (:class:`TooLarge` beyond: a huge answer or a gzip bomb is never held whole); other bodies are
        not read."""
        with self.client.stream("GET", url) as response:
            if not 200 <= response.status_code < 300:
                return response, b""
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.options.max_bytes:
                raise TooLarge(f"Content-Length {declared}")
            body = decode_capped(response.iter_raw(), response.headers.get("content-encoding"), self.options.max_bytes)
            return response, body

    def _get_following(self, url: str, host: str, *, check_robots: bool) -> tuple[FetchResult, float | None]:
        """One attempt: GET, following redirects that stay on the same host. Returns (result, Retry-After)."""
        current = url
        for _ in range(self.options.max_redirects + 1):
            self.clock.wait(host)
            try:
                with self._count_lock:
                    self.requests_made += 1
                with deadline(self.options.timeout):  # connecting, waiting and reading the capped body, together
                    response, body = self._get(current)
            except httpx.TimeoutException:
                return FetchResult(url, "failed", reason="timeout", final_url=current), None
            except TooLarge:
                return FetchResult(url, "skipped", reason="too_large", final_url=current), None
            except (UnsupportedEncoding, zlib.error):
                return FetchResult(url, "failed", reason="bad_content_encoding", final_url=current), None
            except httpx.HTTPError as exc:
                return FetchResult(url, "failed", reason="connection_error", final_url=current,
                                   text=type(exc).__name__), None
            status = response.status_code
            if status in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    return FetchResult(url, "failed", status=status, reason="redirect_without_location"), None
                target = urljoin(current, location)
                if urlsplit(target).netloc != host or urlsplit(target).scheme not in ("http", "https"):
                    return FetchResult(url, "skipped", status=status, reason="off_host_redirect",
                                       final_url=target), None
                if check_robots and self.allowed(target) == "robots_disallowed":
                    return FetchResult(url, "skipped", status=status, reason="robots_disallowed",
                                       final_url=target), None
                current = target
                continue
            content_type = response.headers.get("content-type")
            if 200 <= status < 300:
                text = body.decode(response.encoding or "utf-8", errors="replace")
                return FetchResult(url, "ok", status=status, text=text, final_url=current,
                                   content_type=content_type, content=body), None
            if status in (404, 410):
                return FetchResult(url, "not_found", status=status, reason=f"http_{status}", final_url=current), None
            wait = retry_after_seconds(response.headers.get("retry-after")) if status in (429, 503) else None
            return FetchResult(url, "failed", status=status, reason=f"http_{status}", final_url=current), wait
        return FetchResult(url, "failed", reason="too_many_redirects", final_url=current), None
