"""The interactive review loop: shows a case page by page, reads keys, and calls the session.

Keys on a case: ``a`` accept, ``c`` correct (type a code), ``r`` reject (reason 1-7, comment, optional code), ``s``
skip, ``b`` back, ``f`` flag for discussion, ``n``/space and ``p`` page, ``?`` help, ``q`` quit. In blind mode, ``e``
enters your own code before the model's is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from ..display import cell
from ..errors import UsageError
from .keys import PipeKeys, TtyKeys
from .screen import case_body, render_lines
from .session import ActionRefused, ReviewSession, code_hint
from .store import REJECT_REASONS

MIN_WIDTH = 60
CASE_KEYS = "[a]ccept  [c]orrect  [r]eject  [s]kip  [b]ack  [f]lag  [q]uit  [?]help"
BLIND_KEYS = "[e]nter your code  [s]kip  [b]ack  [q]uit  [?]help"
HELP = """a  accept the model's code            c  correct: type the right (billable) code
r  reject, with a reason and comment   s  skip (the case comes back later)
b  back to your previous decision      f  flag / unflag the case for discussion
n  next page (also space)              p  previous page
e  blind mode: enter your own code     q  quit (every decision is already saved)
Typing a code: it is checked against ICD-10-CM as you type; Tab takes the first suggestion, Esc cancels.
From a pipe: one key or answer per line."""


class TerminalTooNarrow(UsageError):
    """The terminal cannot show a case legibly."""


def check_width(console: Console) -> None:
    if console.width < MIN_WIDTH:
        raise TerminalTooNarrow(
            f"the terminal is {console.width} columns wide; the audit needs at least {MIN_WIDTH}: widen the window "
            "(or set COLUMNS) and run the same command again — nothing was lost"
        )


@dataclass
class Summary:
    counts: dict[str, int]
    decided: int
    remaining: int
    pending: int
    pending_path: str


class ReviewScreen:
    """Runs one reviewer's session on a console with a key source."""

    def __init__(self, session: ReviewSession, console: Console, keys: PipeKeys | TtyKeys):
        self.session = session
        self.console = console
        self.keys = keys
        self.plain = console.color_system is None

    # -- output --------------------------------------------------------------------------------------------------
    def say(self, message: str, style: str = "") -> None:
        self.console.print(cell(message, style=style))

    def _pages(self) -> list[list[str]]:
        view = self.session.view()
        assert view is not None
        lines = render_lines(self.console, case_body(view, self.session.reviewer, blind=self.session.blind,
                                                     plain=self.plain))
        size = max(5, self.console.height - 3)
        return [lines[i:i + size] for i in range(0, len(lines), size)] or [[]]

    def _show(self, pages: list[list[str]], page: int) -> None:
        if self.keys.interactive:
            self.console.clear()
        self.console.file.write("\n".join(pages[page]) + "\n")
        keys = BLIND_KEYS if self.session.needs_blind_code else CASE_KEYS
        if len(pages) > 1:
            keys += f"   page {page + 1}/{len(pages)}: [n]ext [p]rev"
        self.say(keys, "dim")
        self.console.file.flush()

    # -- input helpers -------------------------------------------------------------------------------------------
    def _live_status(self, text: str) -> str:
        if len(text.strip()) < 3:
            return ""
        return code_hint(self.session.check_code(text))

    def ask_code(self, prompt: str, *, optional: bool = False) -> str | None:
        """A billable code, validated with suggestions; None when cancelled (or left empty when ``optional``)."""
        suggestions: list[str] = []
        while True:
            text = self.keys.code(prompt, self._live_status)
            if text is None or not text.strip():
                return None
            text = text.strip()
            if text.isdigit() and 1 <= int(text) <= len(suggestions):
                text = suggestions[int(text) - 1]
            v = self.session.check_code(text)
            if v.status == "billable":
                self.say(f"{v.code}  {v.description}", "green")
                return v.code
            if v.status == "header":
                self.say(f"{v.code} ({v.description}) is a header, not billable: choose a billable code", "yellow")
            else:
                self.say(v.message or f"{text!r} is not a code", "red")
            suggestions = v.suggestions
            for i, code in enumerate(suggestions, 1):
                self.say(f"  {i}) {code}  {self.session.kb.description(code) or ''}")
            hint = "type a code, a suggestion number, or " if suggestions else "type a code, or "
            self.say(hint + ("Enter to skip" if optional else "Enter to cancel"), "dim")

    def ask_reason(self) -> str | None:
        keys = list(REJECT_REASONS)
        for i, key in enumerate(keys, 1):
            self.say(f"  {i}) {REJECT_REASONS[key]}")
        answer = self.keys.key("reason (1-7, other key cancels)> ")
        if answer.isdigit() and 1 <= int(answer) <= len(keys):
            return keys[int(answer) - 1]
        from .importer import reason_key

        return reason_key(answer) if len(answer) > 1 else None

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self) -> Summary:
        check_width(self.console)
        try:
            with self.keys:
                self._loop()
        except (EOFError, KeyboardInterrupt, _Quit):
            self.console.print()
        return self._summary()

    def _loop(self) -> None:
        while not self.session.done:
            if self.console.width < MIN_WIDTH:
                self.say(f"terminal too narrow ({self.console.width} < {MIN_WIDTH} columns): widen it, then "
                         "press a key", "red")
                self.keys.key()
                continue
            self._case()

    def _case(self) -> None:
        pages = self._pages()
        page = 0
        self._show(pages, page)
        while True:
            key = self.keys.key()
            if key in ("n", "p"):
                page = min(page + 1, len(pages) - 1) if key == "n" else max(page - 1, 0)
                self._show(pages, page)
                continue
            if key == "?":
                self.say(HELP)
                continue
            if key == "q":
                raise _Quit
            try:
                if self._act(key):
                    return
            except ActionRefused as exc:
                self.say(str(exc), "red")

    def _act(self, key: str) -> bool:
        """Apply one key; True when the screen must change (a decision, back, skip, the blind code)."""
        s = self.session
        warning = None
        if s.needs_blind_code:
            if key in ("e", "\n"):
                code = self.ask_code("your code (Enter cancels)> ")
                if code is None:
                    return False
                s.enter_blind_code(code)
            elif key == "s":
                warning = s.skip()
            elif key == "b":
                s.back()
            elif key in ("a", "c", "r", "f"):
                raise ActionRefused("blind mode: enter your code first (e)")
            else:
                self.say(f"unknown key {key!r}: {BLIND_KEYS}", "red")
                return False
        elif key == "a":
            warning = s.accept()
        elif key == "c":
            code = self.ask_code("correct code (Enter cancels)> ")
            if code is None:
                return False
            warning = s.correct(code)
        elif key == "r":
            reason = self.ask_reason()
            if reason is None:
                self.say("rejection cancelled", "dim")
                return False
            comment = self.keys.line("comment (Enter for none)> ")
            if reason == "other" and not comment.strip():
                comment = self.keys.line("reason 'other' needs a comment> ")
                if not comment.strip():
                    self.say("rejection cancelled", "dim")
                    return False
            code = self.ask_code("the right code if you know it (Enter to skip)> ", optional=True)
            warning = s.reject(reason, comment, code)
        elif key == "s":
            warning = s.skip()
        elif key == "b":
            s.back()
        elif key == "f":
            state = s.toggle_flag()
            self.say("flagged for discussion (saved with your decision)" if state else "flag removed", "yellow")
            return False
        else:
            self.say(f"unknown key {key!r}: {CASE_KEYS}", "red")
            return False
        if warning:
            self.say(warning, "bold red")
        return True

    def _summary(self) -> Summary:
        s = self.session
        return Summary(dict(s.counts), s.decided, s.remaining, len(s.pending.decisions), str(s.pending.path))


class _Quit(Exception):
    pass
