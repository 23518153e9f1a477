"""A small scripted OpenAI-compatible server for the openai engine's tests (retries, timeouts, several servers).

What it does with a request depends on the last user message:
``ratelimit`` answers 429 (with ``Retry-After: 0``) the first time, then 200; ``broken`` always answers 500;
``slow`` sleeps past the client's timeout; ``reasoning`` answers with ``reasoning_content`` as a server-side
reasoning parser would; anything else answers 200. ``choices_per_request`` caps the choices it returns (like
``transformers serve``, which ignores ``n``); ``reject_continue`` answers 422 to ``continue_final_message``.
Every request body is recorded in ``requests`` together with its headers.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "patient has lumbar disc disorder with radiculopathy</think><diagnosis>M5116</diagnosis>"


class FakeServer:
    def __init__(self, *, choices_per_request: int | None = None, reject_continue: bool = False, slow: float = 2.0):
        self.requests: list[dict] = []
        self.seen: dict[str, int] = {}
        self.choices_per_request = choices_per_request
        self.reject_continue = reject_continue
        self.slow = slow
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                data = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()
                self.send_response(200 if self.path == "/v1/models" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                status, payload, headers = server.answer(self.path, body)
                if status is None:
                    return
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        return Handler

    def answer(self, path: str, body: dict):
        if "messages" in body:
            topic = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        else:
            topic = body.get("prompt", "")
        with self.lock:
            count = self.seen[topic] = self.seen.get(topic, 0) + 1
        if self.reject_continue and body.get("continue_final_message"):
            return 422, {"detail": "Unexpected fields in the request: {'continue_final_message'}"}, {}
        if "broken" in topic:
            return 500, {"error": "internal error"}, {}
        if "ratelimit" in topic and count == 1:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        if "slow" in topic:
            time.sleep(self.slow)
        n = int(body.get("n") or 1)
        if self.choices_per_request:
            n = min(n, self.choices_per_request)
        if path.endswith("/completions") and "messages" not in body:
            choices = [{"index": i, "text": ANSWER, "finish_reason": "stop"} for i in range(n)]
        elif "reasoning" in topic:
            message = {"role": "assistant", "content": "<diagnosis>M5116</diagnosis>",
                       "reasoning_content": "lumbar disc disorder"}
            choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)]
        else:
            message = {"role": "assistant", "content": ANSWER}
            choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)]
        usage = {"prompt_tokens": 42, "completion_tokens": 11 * n, "total_tokens": 42 + 11 * n}
        return 200, {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}, {}
