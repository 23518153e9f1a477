"""The ``openai`` engine: any OpenAI-compatible server (vLLM ``serve``, SGLang, TGI, ``transformers serve``).

One batch is spread over every ``base_url`` (the least-loaded server takes the next request, ties go round-robin),
with at most ``concurrency`` requests in flight per server. 429, 5xx, timeouts and connection errors are retried
with exponential backoff (``Retry-After`` is honoured); when the retries run out that note gets a
:class:`~icdreason.engines.base.Generation` with ``error`` set and the batch goes on. ``timeout`` is a deadline for
the whole request (connecting, sending, waiting and reading), so a server that trickles its answer cannot stall a
run. When ``max_consecutive_failures`` requests in a row fail for good because of the server (no connection,
timeouts, 5xx, 401/403/404), the server is taken for dead: :class:`~icdreason.errors.ServiceUnavailable` stops the
run, naming it, and the notes in flight are not recorded as answered.

A response's ``content`` may be a string, the list-of-parts shape (``[{"type": "text", "text": ...}]``) or null;
anything else, or a response of another shape, is an error for that note only.

The prefill (the reference models answer inside ``<think>``) is sent as a final assistant message with
``continue_final_message=true, add_generation_prompt=false`` (vLLM, SGLang). A server that rejects those fields
(400/422, e.g. ``transformers serve``) is switched, for the rest of the run, to ``/v1/completions`` with the chat
template applied here by the model's tokenizer (``tokenizer`` option, else the model name when it loads locally);
without a tokenizer the prefill is dropped and ``extra["prefill"]`` says so. ``n`` samples are asked for in one
request; a server that returns fewer (``transformers serve`` ignores ``n``) is asked again for the rest, with the
seed moved on so the samples differ. A server-side reasoning parser's ``reasoning_content`` is put back in front of
``</think>``.

The API key is read from the environment variable named by ``api_key_env``; it is never printed, logged or stored
in the options, and it is scrubbed (with the passwords of the base URLs) from any text a server sends back
(:func:`icdreason.redact.scrub`): an error body may echo a request's headers.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..errors import EngineError, ServiceUnavailable, UsageError
from ..redact import mask, scrub, url_secrets
from ..settings import option
from .base import Engine, EngineOptions, Generation, Prompt, SamplingParams, shared_option
from .openai_answers import RequestFailed, excerpt, read_answer, retry_after

PREFILL_MODES = ("auto", "continue", "completions", "drop")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
#: Answers that say the server (or the URL, or the key) is wrong, whatever the note: they count towards
#: ``max_consecutive_failures``. 400, 413 and 422 are about one request and do not.
SERVER_FAULT_STATUS = {401, 403, 404, 405, 407}
DEFAULT_URL = "http://127.0.0.1:8000/v1"


def _default_urls() -> list[str]:
    return [os.environ.get("OPENAI_BASE_URL") or DEFAULT_URL]


@dataclass
class OpenAIOptions(EngineOptions):
    """Options of the openai engine."""

    renamed = {"max_retries": "retries"}  # the old name, accepted with a deprecation line until the next release

    base_url: list[str] = shared_option("base_url", factory=_default_urls)
    api_key_env: str = shared_option("api_key_env", "OPENAI_API_KEY")
    concurrency: int = shared_option("concurrency", 8)
    timeout: float = shared_option("timeout", 600.0)
    connect_timeout: float = option(10.0, "Seconds to open a connection.")
    retries: int = shared_option("retries", 5)
    backoff: float = option(1.0, "First wait before a retry, doubled each time (seconds).")
    backoff_max: float = option(60.0, "Longest wait between retries (seconds).")
    prefill_mode: str = option("auto", "auto (continue_final_message, else /v1/completions), continue, completions, "
                               "drop.")
    tokenizer: str | None = option(None, "Tokenizer (hub id or directory) for the /v1/completions fallback "
                                   "(default: the model).")
    structured_field: str = option("structured_outputs", "Request field for --constrain: structured_outputs (vLLM "
                                   ">= 0.12), guided_regex (older vLLM), regex (SGLang).")
    code_format: str = option("either", "How codes may be written inside <diagnosis> when constraining: "
                              "either (M5116 or M51.16), undotted or dotted.")
    max_consecutive_failures: int = option(5, "Stop the run when this many requests in a row fail for good "
                                           "because of the server (no connection, timeouts, 5xx, 401/403/404); "
                                           "0: never stop.", min=0)

    def __post_init__(self) -> None:
        urls = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)
        if not urls:
            raise UsageError("--base-url needs at least one server URL")
        self.base_url = [normalize_base_url(u) for u in urls]
        if self.concurrency < 1 or self.retries < 0 or self.timeout <= 0 or self.max_consecutive_failures < 0:
            raise UsageError("concurrency must be >= 1, retries >= 0, timeout > 0 and max_consecutive_failures >= 0")
        if self.prefill_mode not in PREFILL_MODES:
            raise UsageError(f"prefill_mode must be one of {', '.join(PREFILL_MODES)}")


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a trailing slash is dropped; the scheme is required."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--base-url {mask(url)!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
    if parts.path in ("", "/"):
        url += "/v1"
    return url


@dataclass
class _Server:
    url: str
    inflight: int = 0
    sent: int = 0
    prefill_mode: str = "continue"


class OpenAIEngine(Engine):
    """Chat completions against one or more OpenAI-compatible servers, with bounded async concurrency."""

    name: ClassVar[str] = "openai"
    Options: ClassVar[type[EngineOptions]] = OpenAIOptions
    supports_constrain: ClassVar[bool] = True

    def __init__(self, model: str | None, options: EngineOptions | None = None, kb=None):
        super().__init__(model, options, kb)
        from ..models import expand_alias

        opts: OpenAIOptions = self.options  # type: ignore[assignment]
        self.model = expand_alias(model) if model else None
        key = os.environ.get(opts.api_key_env)
        if key is None and opts.api_key_env != "OPENAI_API_KEY":
            raise UsageError(f"environment variable {opts.api_key_env} (from --api-key-env) is not set")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        #: values scrubbed from any text a server sends back (an error body may echo the request's headers)
        self._secrets = [key or "", *(s for url in opts.base_url for s in url_secrets(url))]
        start = "continue" if opts.prefill_mode == "auto" else opts.prefill_mode
        self.servers = [_Server(url, prefill_mode=start) for url in opts.base_url]
        self._failures_in_row = 0  # requests failed for good because of the server, since the last answer
        self._failing: list[str] = []  # their messages
        self._tokenizer: Any = None
        self._tokenizer_tried = False
        self._regex: dict[bool, str] = {}

    # -- the protocol ------------------------------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """Send every prompt, ``concurrency`` per server at a time; failures become per-prompt errors."""
        return _run_sync(self._generate(prompts, params))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["options"]["base_url"] = [mask(u) for u in info["options"]["base_url"]]
        info["prefill_modes"] = {mask(s.url): s.prefill_mode for s in self.servers}
        return info

    def notices(self) -> list[str]:
        """Which server(s) the run talks to, and where that came from (never a silent default)."""
        urls = [s.url for s in self.servers]
        shown = ", ".join(mask(u) for u in urls)
        label = "server" if len(urls) == 1 else "servers"
        env = os.environ.get("OPENAI_BASE_URL")
        if env and urls == [normalize_base_url(env)]:
            return [f"{label}: {shown} (from OPENAI_BASE_URL)"]
        if not env and urls == [DEFAULT_URL]:
            return [f"{label}: {shown} (the default: no --base-url and no OPENAI_BASE_URL)"]
        return [f"{label}: {shown}"]

    # -- batch -------------------------------------------------------------------------------------------------------
    async def _generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        import httpx

        opts: OpenAIOptions = self.options  # type: ignore[assignment]
        timeout = httpx.Timeout(opts.timeout, connect=opts.connect_timeout)
        slots = opts.concurrency * len(self.servers)
        limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=self._headers) as client:
            if self.model is None:
                self.model = await self._discover_model(client)
            gate = asyncio.Semaphore(slots)
            tasks = [asyncio.create_task(self._one(client, gate, p, params)) for p in prompts]
            try:
                return list(await asyncio.gather(*tasks))
            except ServiceUnavailable:  # the server is dead: the requests still in flight are abandoned
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _discover_model(self, client) -> str:
        url = self.servers[0].url
        try:
            async with asyncio.timeout(self.options.timeout):  # type: ignore[attr-defined]
                response = await client.get(f"{url}/models")
            response.raise_for_status()
            return response.json()["data"][0]["id"]
        except Exception as exc:
            raise EngineError(
                f"no --model given and {mask(url)}/models did not name one ({type(exc).__name__}): pass --model"
            ) from None

    async def _one(self, client, gate, prompt: Prompt, params: SamplingParams) -> Generation:
        started = time.perf_counter()
        texts: list[str] = []
        reasons: list[str] = []
        tokens_in = tokens_out = 0
        used: list[str] = []
        prefill = "none"
        try:
            for extra_request in range(params.n):
                if len(texts) >= params.n:
                    break
                seed = None if params.seed is None else params.seed + extra_request
                server, mode, data = await self._request(client, gate, prompt, params, params.n - len(texts), seed)
                self._failures_in_row = 0  # the server answered
                self._failing.clear()
                new_texts, new_reasons, used_in, used_out = read_answer(data, mask(server.url), params.n - len(texts))
                texts += [scrub(t, self._secrets) for t in new_texts]
                reasons += new_reasons
                tokens_in = tokens_in or used_in
                tokens_out += used_out
                used.append(mask(server.url))
                prefill = mode
        except RequestFailed as exc:
            message = scrub(str(exc), self._secrets)
            self._count_failure(exc, message)
            return Generation(texts=[], tokens_in=tokens_in, tokens_out=tokens_out,
                              seconds=time.perf_counter() - started, error=message)
        extra = {"finish_reasons": reasons, "servers": used, "prefill": prefill if prompt.prefill else "none"}
        return Generation(texts=texts, tokens_in=tokens_in, tokens_out=tokens_out,
                          seconds=time.perf_counter() - started, extra=extra)

    def _count_failure(self, exc: RequestFailed, message: str) -> None:
        """Count a request that failed because of the server; raise :class:`ServiceUnavailable` at the limit."""
        if not exc.server_fault:
            self._failures_in_row = 0  # the server answered, about this note only
            self._failing.clear()
            return
        self._failures_in_row += 1
        self._failing.append(mask(exc.url or ""))
        limit = self.options.max_consecutive_failures  # type: ignore[attr-defined]
        if limit and self._failures_in_row >= limit:
            urls = ", ".join(dict.fromkeys(u for u in self._failing if u)) or "the server"
            raise ServiceUnavailable(
                f"stopped after {self._failures_in_row} requests in a row failed (last: {message}): {urls} is not "
                "answering. The records written so far are kept: start the server or fix --base-url, then continue "
                "with --resume"
            )

    # -- one request with retries ------------------------------------------------------------------------------------
    async def _request(self, client, gate, prompt, params, n, seed) -> tuple[_Server, str, dict]:
        import httpx

        opts: OpenAIOptions = self.options  # type: ignore[assignment]
        attempt, last = 0, "no attempt"
        while True:
            async with gate:
                server = min(self.servers, key=lambda s: (s.inflight, s.sent))
                server.inflight += 1
                server.sent += 1
                mode = self._mode(server, prompt)
                wait = None
                try:
                    path, body = self._body(mode, prompt, params, n, seed)
                    async with asyncio.timeout(opts.timeout):  # the whole request, however slowly it trickles
                        response = await client.post(f"{server.url}{path}", json=body)
                except (TimeoutError, httpx.TimeoutException):
                    last = f"timed out after {opts.timeout:g}s"
                except httpx.TransportError as exc:
                    last = f"connection error ({type(exc).__name__})"
                else:
                    status = response.status_code
                    if status == 200:
                        try:
                            return server, mode, response.json()
                        except ValueError:
                            raise RequestFailed(f"{mask(server.url)} answered with invalid JSON") from None
                    detail = excerpt(response)
                    if status in (400, 404, 422) and mode == "continue" and opts.prefill_mode == "auto":
                        server.prefill_mode = "completions" if self._load_tokenizer() is not None else "drop"
                        continue  # a capability answer, not a failure: try again at once the other way
                    if status not in RETRY_STATUS:
                        raise RequestFailed(f"HTTP {status} from {mask(server.url)}{path}: {detail}",
                                            server_fault=status in SERVER_FAULT_STATUS or status >= 500,
                                            url=server.url)
                    last = f"HTTP {status}: {detail}"
                    wait = retry_after(response)
                finally:
                    server.inflight -= 1
            attempt += 1
            if attempt > opts.retries:
                raise RequestFailed(f"{last} (from {mask(server.url)}, {attempt} attempts)", server_fault=True,
                                    url=server.url)
            delay = min(opts.backoff_max, opts.backoff * 2 ** (attempt - 1)) * random.uniform(0.75, 1.0)
            await asyncio.sleep(min(opts.backoff_max, wait) if wait is not None else delay)

    def _mode(self, server: _Server, prompt: Prompt) -> str:
        if not prompt.prefill:
            return "chat"
        if server.prefill_mode == "completions" and self._load_tokenizer() is None:
            return "drop"
        return server.prefill_mode

    def _body(self, mode: str, prompt: Prompt, params: SamplingParams, n: int, seed: int | None) -> tuple[str, dict]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "n": n}
        if seed is not None:
            body["seed"] = seed
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.min_p > 0:
            body["min_p"] = params.min_p  # vLLM and SGLang servers read these sampling extras
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty
        if params.constrain:
            body.update(self._structured(prompt.prefill if mode in ("continue", "completions") else ""))
        if mode == "completions":
            from .chat import render

            return "/completions", {**body, "prompt": render(self._tokenizer, prompt)}
        messages = list(prompt.messages)
        if mode == "continue":
            messages.append({"role": "assistant", "content": prompt.prefill})
            body.update(continue_final_message=True, add_generation_prompt=False)
        return "/chat/completions", {**body, "messages": messages}

    def _structured(self, prefill: str) -> dict[str, Any]:
        from .constrain import billable_code_strings, diagnosis_regex, server_structured_body

        opts: OpenAIOptions = self.options  # type: ignore[assignment]
        key = "<think>" in prefill
        if key not in self._regex:
            codes = billable_code_strings(self.kb, form=opts.code_format)
            self._regex[key] = diagnosis_regex("billable", codes, prefill=prefill, form=opts.code_format)
        return server_structured_body(self._regex[key], opts.structured_field)

    def _load_tokenizer(self):
        if not self._tokenizer_tried:
            self._tokenizer_tried = True
            name = self.options.tokenizer or self.model  # type: ignore[attr-defined]
            try:
                from transformers import AutoTokenizer

                from ..models import hub_offline

                tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=hub_offline())
                self._tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None
            except Exception:
                self._tokenizer = None
        return self._tokenizer


def _run_sync(coro):
    """Run a coroutine from synchronous code, also when an event loop is already running (e.g. in Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
