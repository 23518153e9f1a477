"""LLM-as-a-judge reward: an OpenAI-compatible server scores a reasoning trace 1-5.

As in the paper (section 3.1), the judge sees the admission note, the *predicted* code with its description, and —
retrieved for the predicted code, not the gold one — the symptom description and the chapter's coding guideline
from the knowledge base (:func:`icdreason.kb.enrich.enrichment_for`; ``rag=False`` leaves them out). The prompt is
icdreason's own, or a file in the authors' JSON shape (:mod:`icdreason.rewards.judge_prompt`). It answers ``{"score": n}``; constrained
decoding is asked for where the server supports it (vLLM ``structured_outputs``/``guided_choice``, or an OpenAI
``response_format`` JSON schema), and the answer is parsed strictly.

A training step never fails because of the judge: a timeout, a refused connection, an HTTP error or an answer that
is not exactly ``{"score": 1..5}`` gives ``None`` (the reward then uses the neutral score) and is counted in
:attr:`JudgeClient.stats`. Scores are cached in SQLite, keyed by (note hash, trace hash, code, judge model).
The API key is read from an environment variable and never printed or stored. :func:`check_judge` probes the
endpoint before a training run starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codes import dotted, normalize
from ..errors import DependencyError, UsageError
from .judge_prompt import SYSTEM_PROMPT, USER_TEMPLATE, JudgePrompt, load_judge_prompt

__all__ = [
    "CHOICES",
    "JudgeClient",
    "JudgeItem",
    "JudgeStats",
    "check_judge",
    "judge_for_config",
    "parse_judge_answer",
]

log = logging.getLogger("icdreason.judge")  # the name users filter on; kept when the module moved into rewards/

#: The only answers accepted (also the guided-choice list sent to vLLM).
CHOICES = [json.dumps({"score": n}) for n in range(1, 6)]

_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
    "required": ["score"],
    "additionalProperties": False,
}

@dataclass(frozen=True)
class JudgeItem:
    """One trace to judge."""

    note: str
    trace: str
    code: str  # the predicted code, dotted or undotted


@dataclass
class JudgeStats:
    """What the client did: requests sent, cache hits, and failures counted by reason."""

    requests: int = 0
    cache_hits: int = 0
    failures: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def parse_judge_answer(text: str | None) -> int | None:
    """The score of an answer that is exactly a JSON object ``{"score": n}`` with integer n in 1..5, else None."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text.strip())
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {"score"}:
        return None
    score = value["score"]
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        return None
    return score


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class _Cache:
    """SQLite score cache (one connection; :class:`JudgeClient` serialises access with a lock)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS judge_scores (note_hash TEXT, trace_hash TEXT, code TEXT, model TEXT, "
            "score REAL, created REAL, PRIMARY KEY (note_hash, trace_hash, code, model))"
        )
        self.con.commit()

    def get(self, key: tuple[str, str, str, str]) -> float | None:
        row = self.con.execute(
            "SELECT score FROM judge_scores WHERE note_hash=? AND trace_hash=? AND code=? AND model=?", key
        ).fetchone()
        return None if row is None else float(row[0])

    def put_many(self, rows: list[tuple[str, str, str, str, float]]) -> None:
        if rows:
            now = time.time()
            self.con.executemany("INSERT OR REPLACE INTO judge_scores VALUES (?, ?, ?, ?, ?, ?)",
                                 [(*r, now) for r in rows])
            self.con.commit()

    def close(self) -> None:
        self.con.close()


class JudgeClient:
    """Scores traces through an OpenAI-compatible ``/chat/completions`` endpoint, concurrently and cached."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key_env: str = "ICDREASON_JUDGE_API_KEY",
        timeout: float = 60.0,
        concurrency: int = 16,
        guided: str = "structured_outputs",
        cache: str | os.PathLike[str] | None = None,
        kb: Any = None,
        kb_path: str | os.PathLike[str] | None = None,
        retries: int = 1,
        max_tokens: int = 16,
        prompt: JudgePrompt | str | os.PathLike[str] | None = None,
        rag: bool = True,
    ):
        import httpx

        self.url = url.rstrip("/")
        self.model = model
        self.prompt = load_judge_prompt(prompt) if isinstance(prompt, (str, os.PathLike)) else prompt
        self.rag = rag
        # Scores depend on the prompt: a prompt file or RAG off get their own cache entries (the model column).
        self._cache_model = model
        if self.prompt is not None or not rag:
            prompt_id = self.prompt.sha256[:16] if self.prompt else "icdreason"
            self._cache_model = f"{model} prompt={prompt_id} rag={int(rag)}"
        self.guided = guided
        self.retries = retries
        self.max_tokens = max_tokens
        self.concurrency = max(1, int(concurrency))
        self.stats = JudgeStats()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers=headers,
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="icdreason-judge")
        self._lock = threading.Lock()  # counters
        self._state_lock = threading.Lock()  # cache, knowledge base and enrichment (score_many may run in threads)
        self._kb = kb
        self._kb_path = kb_path
        self._kb_failed = False
        self._enrichment: dict[str, dict] = {}
        self._cache = self._open_cache(cache)

    # -- setup ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _open_cache(cache: str | os.PathLike[str] | None) -> _Cache | None:
        if cache is not None and str(cache).lower() in ("off", "none", "false", "0"):
            return None
        if cache is None:
            from ..config import home_dir

            cache = home_dir() / "judge_cache.sqlite"
        return _Cache(Path(cache).expanduser())

    def _context(self, code: str) -> dict:
        """Description, symptoms and guideline of the predicted code (cached per code; never raises)."""
        found = self._enrichment.get(code)
        if found is not None:
            return found
        ctx = {"description": "(no description found)", "symptoms": "No symptom description available.",
               "guideline": "No guideline available."}
        kb = self._knowledge_base()
        if kb is not None:
            try:
                from ..kb.enrich import enrichment_for, enrichment_notice, prompt_texts

                ctx["description"] = kb.description(dotted(code)) or ctx["description"]
                if self.rag:
                    notice = enrichment_notice(kb) if not self._enrichment else None
                    if notice:  # said once per judge, at its first code; the tabular notes stand in
                        self._warn(notice)
                    ctx["symptoms"], ctx["guideline"] = prompt_texts(enrichment_for(kb, dotted(code)))
            except Exception as exc:  # a KB problem must not stop a training step
                self._warn("knowledge-base lookup failed", exc)
        self._enrichment[code] = ctx
        return ctx

    def _knowledge_base(self):
        if self._kb is None and not self._kb_failed:
            try:
                from ..kb import KnowledgeBase

                self._kb = KnowledgeBase.open(self._kb_path)
            except Exception as exc:
                self._kb_failed = True
                self._warn("knowledge base unavailable: judging without symptoms and guidelines", exc)
        return self._kb

    def _warn(self, reason: str, exc: BaseException | None = None) -> None:
        with self._lock:
            self.stats.warnings[reason] += 1
            first = self.stats.warnings[reason] == 1
        if first:
            log.warning("judge: %s%s", reason, f" ({type(exc).__name__}: {exc})" if exc else "")

    # -- prompts and requests ------------------------------------------------------------------------------------
    def messages(self, item: JudgeItem) -> list[dict[str, str]]:
        """The chat messages sent for one item."""
        code = normalize(item.code)
        ctx = self._context(code)
        if self.prompt is not None:
            return self.prompt.messages(note=item.note, trace=item.trace.strip(), code=item.code.strip(),
                                        symptoms=ctx["symptoms"] if self.rag else "",
                                        chapter=ctx["guideline"] if self.rag else "")
        user = USER_TEMPLATE.format(note=item.note.strip() or "(no note)", trace=item.trace.strip(),
                                    code=dotted(code), **ctx)
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _guided_body(self) -> dict[str, Any]:
        if self.guided == "structured_outputs":
            return {"structured_outputs": {"choice": CHOICES}}
        if self.guided == "guided_choice":
            return {"guided_choice": CHOICES}
        if self.guided == "json_schema":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": "judge_score", "strict": True, "schema": _SCHEMA}}}
        return {}

    def _request(self, messages: list[dict[str, str]]) -> float | None:
        import httpx

        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        attempt = 0
        while True:
            guided = self._guided_body()
            with self._lock:
                self.stats.requests += 1
            try:
                resp = self._http.post(f"{self.url}/chat/completions", json={**body, **guided})
            except httpx.TimeoutException as exc:
                return self._fail("timeout", exc)
            except httpx.HTTPError as exc:
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(0.2 * attempt)
                    continue
                return self._fail("connection error", exc)
            if resp.status_code in (400, 422) and guided:
                # The server does not know the constrained-decoding parameters: ask without them from now on.
                self.guided = "none"
                self._warn(f"the judge server rejected constrained decoding (HTTP {resp.status_code}); asking without")
                continue
            if resp.status_code >= 500 and attempt < self.retries:
                attempt += 1
                time.sleep(0.2 * attempt)
                continue
            if resp.status_code >= 400:
                return self._fail(f"HTTP {resp.status_code}")
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return self._fail("malformed response", exc)
            score = parse_judge_answer(content)
            if score is None:
                return self._fail("answer is not {\"score\": 1-5}")
            return float(score)

    def _fail(self, reason: str, exc: BaseException | None = None) -> None:
        with self._lock:
            self.stats.failures[reason] += 1
        self._warn(f"judge call failed: {reason}; using the neutral score", exc)
        return None

    # -- public --------------------------------------------------------------------------------------------------
    def score_many(self, items: list[JudgeItem]) -> list[float | None]:
        """Scores 1-5 for each item (None where the call failed), at most ``concurrency`` requests at a time."""
        results: list[float | None] = [None] * len(items)
        keys = [(_sha(it.note), _sha(it.trace), normalize(it.code), self._cache_model) for it in items]
        todo: dict[tuple, list[int]] = {}
        with self._state_lock:
            for i, key in enumerate(keys):
                cached = self._cache.get(key) if self._cache is not None else None
                if cached is not None:
                    results[i] = cached
                    self.stats.cache_hits += 1
                else:
                    todo.setdefault(key, []).append(i)
            if not todo:
                return results
            order = list(todo)
            prompts = [self.messages(items[todo[k][0]]) for k in order]  # KB lookups under the lock
        scores = list(self._pool.map(self._request, prompts))
        fresh = []
        for key, score in zip(order, scores):
            for i in todo[key]:
                results[i] = score
            if score is not None:
                fresh.append((*key, score))
        if self._cache is not None:
            with self._state_lock:
                self._cache.put_many(fresh)
        return results

    def score(self, item: JudgeItem) -> float | None:
        return self.score_many([item])[0]

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._http.close()
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_CLIENTS: dict[tuple, JudgeClient] = {}
_CLIENTS_LOCK = threading.Lock()


def judge_for_config(config: Any) -> JudgeClient:
    """The shared client for a :class:`icdreason.rewards.RewardConfig` (one per process and setting)."""
    key = (config.judge_url, config.judge_model, config.judge_api_key_env, config.judge_timeout,
           config.judge_concurrency, config.judge_guided, config.judge_cache, config.judge_prompt, config.judge_rag)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = JudgeClient(config.judge_url, config.judge_model, api_key_env=config.judge_api_key_env,
                                 timeout=config.judge_timeout, concurrency=config.judge_concurrency,
                                 guided=config.judge_guided, cache=config.judge_cache,
                                 prompt=config.judge_prompt, rag=config.judge_rag)
            _CLIENTS[key] = client
    return client


def check_judge(url: str | None, model: str | None, *, timeout: float = 10.0) -> None:
    """The judge endpoint must answer (any HTTP status counts as reachable) before training starts."""
    if not url or not model:
        raise UsageError("the judge reward needs --judge-url and --judge-model (or drop it: --no-judge)")
    import httpx

    probe = url.rstrip("/") + "/models"
    try:
        httpx.get(probe, timeout=timeout)
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
        raise DependencyError(
            f"judge at {url} is unreachable ({reason}): start the judge server or fix --judge-url, "
            f"or train without it (--no-judge)"
        ) from None
