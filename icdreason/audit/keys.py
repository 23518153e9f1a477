"""Reading the reviewer's keys: single keys from a terminal, or one key (or answer) per line from a pipe.

On a TTY, decisions are single key presses (``click.getchar``) and codes are typed in a small line editor that validates
the code against the knowledge base after every key. When stdin is not a TTY (a script, a pipe, a test), every key and
every answer is one line of input, echoed to the output so that a transcript reads like the session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console

from ..display import visible

_ESCAPES = {"\x1b[C": "n", "\x1b[B": "n", "\x1b[6~": "n", " ": "n", "\x1b[D": "p", "\x1b[A": "p", "\x1b[5~": "p",
            "\r": "\n"}


def _split_key(text: str) -> tuple[str, str]:
    """The first key of a burst of input (an escape sequence counts as one key) and the rest."""
    if text.startswith("\x1b[") and len(text) > 2:
        for i in range(2, len(text)):
            if text[i].isalpha() or text[i] == "~":
                return text[:i + 1], text[i + 1:]
    return text[0], text[1:]


class PipeKeys:
    """Keys and answers from a non-interactive stream, one per line. End of input means quit."""

    interactive = False

    def __init__(self, console: Console, stream: TextIO | None = None):
        self.console = console
        self.stream = stream or sys.stdin

    def __enter__(self) -> PipeKeys:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def _read(self, prompt: str) -> str:
        line = self.stream.readline()
        if line == "":
            raise EOFError
        text = line.rstrip("\r\n")
        self.console.print(visible(f"{prompt}{text}"), markup=False, highlight=False)
        return text

    def key(self, prompt: str = "> ") -> str:
        """One command: the line, stripped and lower-cased (blank lines are skipped)."""
        while True:
            text = self._read(prompt).strip().lower()
            if text:
                return text

    def line(self, prompt: str) -> str:
        return self._read(prompt)

    def code(self, prompt: str, status: Callable[[str], str]) -> str:
        return self._read(prompt)


class TtyKeys:
    """Single key presses from the terminal; Ctrl-C and Ctrl-D end the session (everything is already saved).

    While the session runs the terminal is in cbreak mode (keys arrive at once, without echo, and keys typed ahead
    are kept); it is back in normal mode for free-text answers and when the session ends.
    """

    interactive = True

    def __init__(self, console: Console, fd: int | None = None):
        self.console = console
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._saved = None
        self._buffer = ""

    def __enter__(self) -> TtyKeys:
        try:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)
        except (ImportError, OSError):  # no termios (Windows): click.getchar per key
            self._saved = None
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)

    def _getchar(self) -> str:
        if self._saved is None:
            import click

            ch = click.getchar()
        else:
            if not self._buffer:
                data = os.read(self.fd, 64)
                if not data:
                    raise EOFError
                self._buffer = data.decode("utf-8", "replace")
            ch, self._buffer = _split_key(self._buffer)
        if ch == "\x03":
            raise KeyboardInterrupt
        if ch == "\x04":
            raise EOFError
        return ch

    def key(self, prompt: str = "> ") -> str:
        ch = self._getchar()
        return _ESCAPES.get(ch, ch.lower() if len(ch) == 1 else ch)

    def line(self, prompt: str) -> str:
        if self._saved is None:
            return self.console.input(prompt, markup=False)
        import tty

        self._restore()
        try:
            return self.console.input(prompt, markup=False)
        finally:
            import termios

            tty.setcbreak(self.fd, termios.TCSANOW)

    def code(self, prompt: str, status: Callable[[str], str]) -> str | None:
        """A line editor: the typed code is validated after every key (``status``); Tab takes the first suggestion
        shown, Enter submits, Escape cancels."""
        out = self.console.file
        buf = ""
        shown = ""
        while True:
            shown = status(buf) if buf else ""
            width = max(10, self.console.width - 1)
            out.write("\r\x1b[2K" + (f"{prompt}{buf}  {shown}")[:width] + "\r" + f"{prompt}{buf}"[:width])
            out.flush()
            ch = self._getchar()
            if ch in ("\r", "\n"):
                out.write("\n")
                return buf
            if ch == "\x1b":
                out.write("\n")
                return None
            if ch in ("\x7f", "\x08"):
                buf = buf[:-1]
            elif ch == "\t" and "e.g. " in shown:
                buf = shown.split("e.g. ", 1)[1].split(",")[0].split()[0]
            elif len(ch) == 1 and ch.isprintable():
                buf += ch


def make_keys(console: Console, stream: TextIO | None = None) -> PipeKeys | TtyKeys:
    """TtyKeys when stdin is a terminal, else PipeKeys."""
    stream = stream or sys.stdin
    return TtyKeys(console) if stream.isatty() else PipeKeys(console, stream)
