"""Stopping a run cleanly on Ctrl-C and on SIGTERM (what ``kill``, ``timeout``, systemd and batch schedulers send).

- :func:`sigterm_interrupts` makes SIGTERM raise :class:`Terminated`, a :class:`KeyboardInterrupt`, so that a
  terminated run ends the way an interrupted one does: the batches written are kept, the run log says
  ``interrupted``, and ``--resume`` continues it.
- :func:`signals_deferred` holds SIGINT and SIGTERM while a batch is being written (a file and the DuckDB log) and
  acts on them right after, so a signal never leaves half a batch in one output and none in the other, nor a DuckDB
  insert interrupted half-way.

Both only act in the main thread (where Python runs signal handlers); elsewhere they do nothing. A signal that the
process ignores (``SIG_IGN``, inherited from a shell) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Terminated", "sigterm_interrupts", "signals_deferred"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM: handled like Ctrl-C (exit status 143 rather than 130)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (unless the process ignores SIGTERM)."""
    if not _main_thread() or signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then handle the first one received as it would have been."""
    if not _main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if handler in (signal.SIG_IGN, None):  # ignored, or installed outside Python: left alone
            continue
        previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            sig = pending[0]
            handler = previous[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(sig)  # the default action, now that the write is whole
