"""The review web app (Starlette): a handful of routes, server-rendered Jinja2 pages and one small script.

Security, in the order a request meets it:

- every response carries a Content-Security-Policy that allows only this server's own script and style (no inline
  script, no inline event handler, nothing from another origin), ``nosniff``, no referrer to other sites and no
  framing;
- a reviewer opens ``/?token=…`` (printed at start); the token is swapped for an HttpOnly, SameSite=Strict cookie
  and the browser is sent on to ``/review``, so the token leaves the address bar; every other route needs the cookie;
- a POST must come from this origin (``Origin``, when the browser sends it) and carry the reviewer's CSRF secret;
- static files come from a fixed table of names read from the package at start: no path is taken from a request and
  nothing can be listed;
- note, trace and every other record text reach a page only through Jinja2's autoescaping.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import DISCLAIMER
from .desk import Reviewer, ReviewDesk

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: The HTML report has inline CSS and embedded PNG plots, and no script at all.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # (no-referrer would make Chrome send ``Origin: null`` with the forms)
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
STATIC = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_FORM_BYTES = 64 * 1024


class SecurityHeaders:
    """ASGI middleware: the headers above on every response (a route may set its own CSP first)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(desk: ReviewDesk, *, cookie: str = "icdreason_audit") -> Starlette:
    """The Starlette app serving ``desk``; ``cookie`` names the session cookie (one per server port)."""
    templates = Environment(loader=PackageLoader("icdreason.audit.web", "templates"), autoescape=True,
                            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    assets = {name: (files("icdreason.audit.web").joinpath("static", name).read_bytes(), media)
              for name, media in STATIC.items()}

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(disclaimer=DISCLAIMER, **context)
        return HTMLResponse(html, status_code=status)

    def denied() -> HTMLResponse:
        return render("denied.html", 403)

    def signed_in(request: Request) -> Reviewer | None:
        return desk.by_token(request.cookies.get(cookie))

    async def index(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is None:
            return RedirectResponse("/review", 303) if signed_in(request) else denied()
        reviewer = desk.by_token(token)
        if reviewer is None:
            return denied()
        response = RedirectResponse("/review", 303)
        response.set_cookie(cookie, reviewer.token, httponly=True, samesite="strict", path="/")
        return response

    async def review(request: Request) -> Response:
        reviewer = signed_in(request)
        if reviewer is None:
            return denied()
        if request.method == "GET":
            context = await run_in_threadpool(desk.page, reviewer)
            return render("review.html", **context)
        form = await _form(request)
        if form is None or not _same_origin(request) or not desk.csrf_ok(reviewer, form.get("csrf")):
            return render("denied.html", 403, reason="the form did not come from this page: reload it and retry")
        outcome = await run_in_threadpool(desk.act, reviewer, form)
        if outcome.ok:
            return RedirectResponse("/review", 303)
        typed = {k: form.get(k, "") for k in ("action", "code", "reason", "comment")}
        context = await run_in_threadpool(lambda: desk.page(reviewer, notice=outcome.notice, typed=typed))
        return render("review.html", outcome.status, **context)

    async def code(request: Request) -> Response:
        if signed_in(request) is None:
            return Response(status_code=403)
        result = await run_in_threadpool(desk.code, request.query_params.get("q", ""))
        return Response(json.dumps(result), media_type="application/json")

    async def report(request: Request) -> Response:
        if signed_in(request) is None:
            return denied()
        html = await run_in_threadpool(desk.report_html)
        return HTMLResponse(html, headers={"content-security-policy": REPORT_CSP})

    async def static(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return Response("not found", 404, media_type="text/plain")
        body, media = found
        return Response(body, media_type=media, headers={"cache-control": "no-cache"})

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/review", review, methods=["GET", "POST"]),
        Route("/api/code", code, methods=["GET"]),
        Route("/report", report, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(SecurityHeaders)
    return app


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form of a POST (at most 64 KiB), or None when it is anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return None


def _same_origin(request: Request) -> bool:
    """False when the browser says the POST comes from another origin (``Origin`` or ``Sec-Fetch-Site``)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        return False
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
