"""A small local HTTP server for the scrape tests: scripted answers per route, request counts and times."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "scrape"


@dataclass
class Answer:
    """One scripted response."""

    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "text/html; charset=utf-8"


def page(name: str, **kwargs) -> Answer:
    """A 200 answer with a fixture file's content (``gesund/i10.html``, ``medlineplus/I21.4.json``)."""
    path = FIXTURES / name
    ctype = "application/json" if path.suffix == ".json" else "text/html; charset=utf-8"
    return Answer(200, path.read_bytes(), content_type=ctype, **kwargs)


class FixtureServer:
    """Serves ``routes``: route key -> list of answers, used in order (the last one repeats).

    ``resolve(path_with_query)`` gives a request's route key (default: the path). Unknown routes get a 404.
    """

    def __init__(self, routes: dict[str, list[Answer]], resolve: Callable[[str], str] | None = None):
        self.routes = routes
        self.resolve = resolve or (lambda p: p.split("?", 1)[0])
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.user_agents: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                key = server.resolve(self.path)
                server.hits[key] += 1
                server.times[key].append(time.monotonic())
                server.user_agents.add(self.headers.get("User-Agent", ""))
                script = server.routes.get(key) or [Answer(404, "<html><body><h1>404 Not Found</h1></body></html>")]
                answer = script[min(server.hits[key], len(script)) - 1]
                if answer.delay:
                    time.sleep(answer.delay)
                body = answer.body.encode("utf-8") if isinstance(answer.body, str) else answer.body
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FixtureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
