"""Joining (or starting) the Ray cluster a ``--ray`` run uses, and Ray Data's settings for it.

``--ray`` takes ``local`` (a new Ray on this machine, stopped at the end), ``auto`` (the cluster this machine belongs
to, or ``$RAY_ADDRESS``, which ``ray job submit`` sets) or ``HOST:PORT`` (a head's GCS address, as ``ray start
--head`` prints it). No address at all (the library's default) means ``auto`` when ``$RAY_ADDRESS`` is set, else
``local``. Ray Client addresses (``ray://``) cannot drive Ray Data pipelines and are refused with the alternative.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..errors import DependencyError, EngineError, UsageError

__all__ = ["RAY_INSTALL_HINT", "parse_address", "ray_installed", "require_ray", "ray_session"]

RAY_INSTALL_HINT = ("--ray needs Ray Data: pip install '.[ray]' in the icdreason checkout (and, for --engine vllm on Ray, "
                    "pip install 'ray[llm]' in the vLLM environment of the cluster's nodes)")

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.\-]+):\d{1,5}$")


def ray_installed() -> bool:
    """Whether Ray is importable here (without importing it)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def require_ray() -> None:
    """Raise a one-line :class:`DependencyError` with the install command when Ray is missing."""
    if not ray_installed():
        raise DependencyError(RAY_INSTALL_HINT)


def parse_address(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The cluster a ``--ray`` value names: ``local``, ``auto`` or ``HOST:PORT`` (see the module docstring)."""
    env = os.environ if environ is None else environ
    text = (value or "").strip()
    if not text:
        return "auto" if env.get("RAY_ADDRESS") else "local"
    if text in ("local", "auto"):
        return text
    if text.startswith("ray://"):
        raise UsageError(f"--ray {text}: Ray Client (ray://) cannot run Ray Data pipelines: run icdreason on a node "
                         "of the cluster with --ray auto (or the head's HOST:6379), or submit it with `ray job submit`")
    if _ADDRESS.match(text):
        return text
    raise UsageError(f"--ray {text!r}: expected local, auto or HOST:PORT (the head's address, e.g. 10.0.0.1:6379)")


def _quiet_ray_data(progress_bars: bool) -> None:
    """Ray Data for a prediction run: progress bars (unless quiet), no execution banners, results as they come."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress_bars
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False  # records are written as they arrive; resume reads ids
    if not os.environ.get("ICDREASON_DEBUG"):
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # failures reach us as exceptions


@contextmanager
def ray_session(address: str, *, progress_bars: bool = True, num_cpus: int | None = None) -> Iterator[dict]:
    """Connect to ``address`` (or start a local Ray; ``num_cpus`` only then), yield the cluster's resources, and
    shut Ray down at the end if this call started it. An already initialised Ray (a notebook, a test session) is
    used as it is and left running."""
    require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = False
    if not ray.is_initialized():
        debug = bool(os.environ.get("ICDREASON_DEBUG"))
        options = {"include_dashboard": False, "logging_level": "info" if debug else "error",
                   "log_to_driver": debug}
        try:
            if address == "local":
                ray.init(address="local", num_cpus=num_cpus, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise EngineError(f"cannot join the Ray cluster at {address} ({first}): start one with `ray start "
                              "--head` on the head node, pass its HOST:6379, or use --ray local") from None
        started = True
    _quiet_ray_data(progress_bars)
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()
