"""A total deadline per HTTP request for synchronous httpx clients.

httpx's timeouts bound each network operation (connect, one read, one write), so a server that sends one byte per
second never trips them and can hold a request forever. Inside ``with deadline(seconds):`` every operation of a
client built on :func:`deadline_transport` gets at most the time left until the deadline, and none once it has
passed: connecting, sending, waiting for the headers and reading the body together take ``seconds`` at most (plus
one scheduler tick). It raises httpx's own timeout errors (:class:`httpx.TimeoutException`).

The deadline is kept in a context variable, so each thread of a thread pool has its own. (The async openai engine
gets the same guarantee from :func:`asyncio.timeout` around each request.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

__all__ = ["deadline", "deadline_transport"]

_DEADLINE: ContextVar[float | None] = ContextVar("icdreason_http_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Requests made inside the block (through a :func:`deadline_transport`) end within ``seconds`` in all."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` cut to the time left before the deadline; ``error`` once it has passed."""
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose reads and writes wait no longer than the deadline allows."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's network backend with every connection wrapped in :class:`_Stream`."""

    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options=None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout), local_address,
                                               socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options=None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(**kwargs: Any) -> httpx.HTTPTransport:
    """An :class:`httpx.HTTPTransport` (``kwargs`` as for it) whose connections honour :func:`deadline`."""
    transport = httpx.HTTPTransport(**kwargs)
    pool = transport._pool  # httpx builds its httpcore pool here; httpcore takes any NetworkBackend
    pool._network_backend = _Backend(pool._network_backend)
    return transport
