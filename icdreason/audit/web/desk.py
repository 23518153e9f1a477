"""The review desk of one web server: each reviewer's session, token and CSRF secret, behind one lock.

Nothing here knows about HTTP. Every action a page can post goes through :meth:`ReviewDesk.act`, which checks that the
page was showing the reviewer's current case (a stale tab or a double key press records nothing) and then calls the
same :class:`~icdreason.audit.session.ReviewSession` method the terminal review calls, so each decision is committed
to the audit store at once. One lock serialises all work on the store and the knowledge base: decisions are a few
rows, and two reviewers posting at the same moment are written one after the other, neither lost.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..session import ActionRefused, ReviewSession, code_hint
from ..store import REJECT_REASONS, AuditStore
from .pages import case_page, done_page

if TYPE_CHECKING:
    from ...kb import KnowledgeBase

#: What a page can post as ``action``.
ACTIONS = ("accept", "correct", "reject", "skip", "back", "flag", "blind")
_CODE_LIKE = re.compile(r"^[A-Za-z][0-9]")


@dataclass
class Notice:
    """A one-line message shown above the case: ``ok``, ``warning`` (kept in the pending file) or ``error``."""

    text: str
    kind: str = "ok"


@dataclass
class Reviewer:
    """One reviewer of this server: their session, the token in their URL and the secret their forms carry."""

    name: str
    token: str
    csrf: str
    session: ReviewSession
    on_screen: str | None = None  # the case whose clock runs since its page was first shown
    notice: Notice | None = None


@dataclass
class Outcome:
    """What an action did: ``ok``, or refused with a notice (nothing recorded) and an HTTP status."""

    ok: bool
    notice: Notice
    status: int = 303


class ReviewDesk:
    """The reviewers of one audit served over HTTP. Every method holds the desk's lock."""

    def __init__(self, store: AuditStore, kb: KnowledgeBase, reviewers: list[str], *, blind: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.kb = kb
        self.blind = blind
        self.lock = threading.Lock()
        self.reviewers = {
            name: Reviewer(name, secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                           ReviewSession(store, name, kb, blind=blind, clock=clock))
            for name in dict.fromkeys(reviewers)
        }

    def by_token(self, token: str | None) -> Reviewer | None:
        """The reviewer whose token this is (compared in constant time), or None."""
        if not token:
            return None
        found = None
        for reviewer in self.reviewers.values():
            if hmac.compare_digest(reviewer.token.encode(), token.encode("utf-8", "replace")):
                found = reviewer
        return found

    @staticmethod
    def csrf_ok(reviewer: Reviewer, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(reviewer.csrf.encode(), value.encode("utf-8", "replace"))

    # -- pages ---------------------------------------------------------------------------------------------------
    def page(self, reviewer: Reviewer, *, notice: Notice | None = None,
             typed: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The template context of the reviewer's current case (or of the end of the audit).

        The case's clock starts when its page is first shown, not when the session chose it; a reload keeps it.
        ``notice`` and ``typed`` re-show a refused form with what was typed in it."""
        with self.lock:
            session = reviewer.session
            view = session.view()
            if view is None:
                reviewer.on_screen = None
                context = done_page(session)
            else:
                if reviewer.on_screen != view.case.case_id:
                    session.restart_clock()
                    reviewer.on_screen = view.case.case_id
                context = case_page(view, session)
            shown = notice or reviewer.notice
            reviewer.notice = None
        context.update(reviewer=reviewer.name, csrf=reviewer.csrf, notice=shown,
                       typed={"action": "", "code": "", "reason": "", "comment": "", **(typed or {})},
                       reasons=list(enumerate(REJECT_REASONS.items(), 1)))
        return context

    # -- actions -------------------------------------------------------------------------------------------------
    def act(self, reviewer: Reviewer, form: Mapping[str, str]) -> Outcome:
        """Apply one posted action to the case the page showed (``case_id``); refused when that is not the
        reviewer's current case any more, or when the session refuses it. Nothing is recorded when refused."""
        action = form.get("action", "")
        if action not in ACTIONS:
            return Outcome(False, Notice(f"unknown action {action!r}", "error"), 400)
        with self.lock:
            session = reviewer.session
            current = session.current.case_id if session.current else ""
            if form.get("case_id", "") != current:
                where = f"case {current}" if current else "the end of the audit"
                return Outcome(False, Notice(f"that page was out of date (another window, or a key pressed twice): "
                                             f"nothing was recorded; this is {where}", "error"), 409)
            try:
                text, warning = self._apply(session, action, form)
            except ActionRefused as exc:
                return Outcome(False, Notice(str(exc), "error"), 422)
            notice = Notice(warning, "warning") if warning else Notice(text)
            reviewer.notice = notice
            return Outcome(True, notice)

    @staticmethod
    def _apply(session: ReviewSession, action: str, form: Mapping[str, str]) -> tuple[str, str | None]:
        """Call the session; returns what happened (one line) and the session's warning, if any."""
        case = session.current
        code = form.get("code", "").strip()
        if action == "back":
            session.back()
            return f"back to case {session.current.case_id}", None
        assert case is not None
        if action == "accept":
            return f"{case.case_id}: accepted {case.model_code}", session.accept()
        if action == "correct":
            if not code:
                raise ActionRefused("type the right code first")
            warning = session.correct(code)
            return f"{case.case_id}: corrected to {session.latest[case.case_id].expert_code}", warning
        if action == "reject":
            reason = form.get("reason", "")
            if not reason:
                raise ActionRefused("choose a reason (1-7)")
            warning = session.reject(reason, form.get("comment"), code or None)
            return f"{case.case_id}: rejected ({REJECT_REASONS[reason]})", warning
        if action == "skip":
            return f"{case.case_id}: skipped (it comes back after the others)", session.skip()
        if action == "flag":
            state = session.toggle_flag()
            return ("flagged for discussion (saved with your decision)" if state else "flag removed"), None
        if not code:
            raise ActionRefused("type your own code first")
        entered = session.enter_blind_code(code)
        return f"your code {entered} is kept; now decide on the model's", None

    # -- codes and the report ------------------------------------------------------------------------------------
    def code(self, text: str) -> dict[str, Any]:
        """Live validation of a typed code for the page: status, description, hint and suggestions (with their
        descriptions). Words that are not a code are searched in the code descriptions instead."""
        text = text.strip()[:64]
        if len(text) < 2:
            return {"status": "empty", "code": "", "description": None, "hint": "", "suggestions": []}
        with self.lock:
            v = self.kb.validate(text)
            if _CODE_LIKE.match(text) or len(text) < 3:
                suggestions = v.suggestions
                hint = code_hint(v)
            else:
                hits = [hit for hit in self.kb.search(text, k=8) if hit.billable][:6]
                suggestions = [hit.code for hit in hits]
                hint = "codes whose description matches:" if hits else "no billable code matches these words"
            listed = [{"code": c, "description": self.kb.description(c)} for c in suggestions]
        return {"status": v.status, "code": v.code, "description": v.description, "hint": hint,
                "suggestions": listed}

    def report_html(self) -> str:
        """The audit's HTML report (``icdreason audit report --html``), with plots when matplotlib is installed."""
        from importlib.util import find_spec

        from ..html import html_report
        from ..report import build_report

        with self.lock:
            report = build_report(self.store)
        return html_report(report, with_plots=find_spec("matplotlib") is not None)
