"""What comes out of a Ray pipeline when something fails, turned into what icdreason reports.

Ray passes a worker's exception on as text (a traceback inside a ``RayTaskError`` or ``ActorDiedError``), so
:func:`library_error` finds the :class:`~icdreason.errors.IcdreasonError` a worker raised in it and raises that again
with its own one-line message. :func:`worker_lost` tells a dead worker process (Ray restarts it and retries) from
our own code raising.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from .. import errors
from ..errors import EngineError, IcdreasonError

__all__ = ["capped_restarts", "first_line", "library_error", "worker_lost"]

_RAISED = re.compile(r"^(?:icdreason\.errors\.)?(\w+): (.+)$")


@contextmanager
def capped_restarts() -> Iterator[None]:
    """Around a ``map_batches`` call given ``max_restarts``/``max_task_retries``: Ray 2.60 has no named parameter
    for them yet and warns that the ``**ray_remote_args`` they travel in are deprecated; without them an actor pool
    restarts a crashing worker forever."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*ray_remote_args. is deprecated")
        yield


def worker_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says a worker process died (not that our code raised, nor that an actor failed to start)."""
    from ray import exceptions as rex

    lost = (rex.ActorDiedError, rex.ActorUnavailableError, rex.WorkerCrashedError, rex.ObjectLostError,
            rex.NodeDiedError, rex.RaySystemError)
    return isinstance(exc, lost) and not getattr(exc, "actor_init_failed", False)


def library_error(exc: BaseException) -> Exception:
    """The error to show for an exception that came out of a Ray pipeline: the :class:`IcdreasonError` a worker
    raised (its traceback text is all Ray passes on) with its own message, else an :class:`EngineError` with the
    last line of the traceback."""
    if isinstance(exc, IcdreasonError):
        return exc
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        match = _RAISED.match(line)
        cls = getattr(errors, match.group(1), None) if match else None
        if isinstance(cls, type) and issubclass(cls, IcdreasonError):
            return cls(match.group(2))
    last = next((line for line in reversed(lines) if _RAISED.match(line)), first_line(exc))
    return EngineError(f"the Ray pipeline failed: {last[:300]} (ICDREASON_DEBUG=1 shows Ray's logs)")


def first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:200]}"
