"""The scraper's timeout is a deadline for the whole request: a server that trickles its answer (headers or body),
one byte at a time so that every read succeeds, cannot stall `scrape`."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from fake_openai_server import FakeServer

from icdreason.scrape.http import FetchOptions, PoliteFetcher


class HeaderTrickler:
    """A raw HTTP server on 127.0.0.1 that sends its status line and headers one byte every ``every`` seconds."""

    def __init__(self, every: float):
        self.every = every
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/page"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n"
        with conn:
            conn.recv(65536)
            for i in range(len(head)):
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(head[i:i + 1])
                except OSError:
                    return  # the client gave up
                time.sleep(self.every)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _fetch(url: str, timeout: float):
    options = FetchOptions(timeout=timeout, retries=0, respect_robots=False, rate=100.0)
    started = time.monotonic()
    with PoliteFetcher(options) as fetcher:
        result = fetcher.fetch(url)
    return result, time.monotonic() - started


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_server_times_out_at_the_deadline(where):
    if where == "body":
        with FakeServer(trickle=0.1) as server:  # an 80-byte answer over 8 s
            result, took = _fetch(server.url + "/models", timeout=1.0)
    else:
        server = HeaderTrickler(every=0.1)  # 250 bytes of headers over 25 s
        try:
            result, took = _fetch(server.url, timeout=1.0)
        finally:
            server.close()
    assert (result.outcome, result.reason) == ("failed", "timeout")
    assert took < 2.5


def test_a_slow_but_steady_answer_within_the_deadline_is_read_whole():
    with FakeServer(trickle=0.005) as server:  # 80 bytes in about 0.4 s
        result, took = _fetch(server.url + "/models", timeout=5.0)
    assert result.ok and '"fake-model"' in result.text
