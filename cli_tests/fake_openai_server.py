"""A small scripted OpenAI-compatible server for the openai engine's tests (retries, timeouts, several servers).

What it does with a request depends on the last user message:
``ratelimit`` answers 429 (with ``Retry-After: 0``) the first time, then 200; ``broken`` answers 500 until
``healed`` is set;
``slow`` sleeps past the client's timeout; ``reasoning`` answers with ``reasoning_content`` as a server-side
reasoning parser would; ``@content:number``, ``@content:parts`` and ``@content:null`` answer with a ``content`` that
is a number, the list-of-parts shape, or null beside ``reasoning_content``; anything else answers 200.
``@hold`` waits until the ``hold`` event is set (a run kept busy while a test looks at it).
``status`` answers every request with that HTTP status (a 401 body echoes the Authorization header, as some servers
do); ``trickle`` sends every answer one byte at a time, that many seconds apart. ``choices_per_request`` caps the choices it returns (like
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
    def __init__(self, *, choices_per_request: int | None = None, reject_continue: bool = False, slow: float = 2.0,
                 status: int | None = None, trickle: float | None = None, hold: threading.Event | None = None):
        self.requests: list[dict] = []
        self.seen: dict[str, int] = {}
        self.choices_per_request = choices_per_request
        self.reject_continue = reject_continue
        self.slow = slow
        self.status = status
        self.trickle = trickle
        self.hold = hold
        self.healed = False
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
                try:
                    self.send_response(200 if self.path == "/v1/models" else 404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.send_body(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def send_body(self, data: bytes) -> None:
                if server.trickle is None:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):  # one byte at a time: every read succeeds, the answer never ends
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(server.trickle)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                if server.status is not None:
                    echoed = f": {self.headers.get('Authorization')}" if server.status == 401 else ""
                    status, payload, headers = server.status, {"error": f"request refused{echoed}"}, {}
                else:
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
                    self.send_body(data)
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
        if "broken" in topic and not self.healed:
            return 500, {"error": "internal error"}, {}
        if "ratelimit" in topic and count == 1:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        if "slow" in topic:
            time.sleep(self.slow)
        if "@hold" in topic and self.hold is not None:
            self.hold.wait(60)
        n = int(body.get("n") or 1)
        if self.choices_per_request:
            n = min(n, self.choices_per_request)
        if path.endswith("/completions") and "messages" not in body:
            choices = [{"index": i, "text": ANSWER, "finish_reason": "stop"} for i in range(n)]
        elif "@content:" in topic:
            shape = topic.split("@content:", 1)[1].split()[0]
            content = {"number": 42, "parts": [{"type": "text", "text": "disc disorder</think>"},
                                               {"type": "text", "text": "<diagnosis>M5116</diagnosis>"}],
                       "null": None}[shape]
            message = {"role": "assistant", "content": content}
            if shape == "null":
                message["reasoning_content"] = "lumbar disc disorder, the answer was cut here"
            choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)]
        elif "reasoning" in topic:
            message = {"role": "assistant", "content": "<diagnosis>M5116</diagnosis>",
                       "reasoning_content": "lumbar disc disorder"}
            choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)]
        else:
            message = {"role": "assistant", "content": ANSWER}
            choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)]
        usage = {"prompt_tokens": 42, "completion_tokens": 11 * n, "total_tokens": 42 + 11 * n}
        return 200, {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}, {}
