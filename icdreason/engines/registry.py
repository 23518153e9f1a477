"""Engine names -> ``"module:Class"``, imported only when an engine is used; and the automatic choice.

Engines are found through the ``icdreason.engines`` entry-point group, so a third-party package adds one without
editing icdreason::

    [project.entry-points."icdreason.engines"]
    mine = "my_pkg.engine:MyEngine"

The built-in engines are listed in icdreason's own ``pyproject.toml`` the same way. :func:`register` adds one at run
time (tests, notebooks). Nothing heavy is imported here: the table is read on first use, the engine module only when
that engine is chosen.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING

from ..errors import DependencyError, UsageError

if TYPE_CHECKING:
    from .base import Engine

__all__ = ["ENGINES", "ENTRY_POINT_GROUP", "register", "engine_class", "choose_engine", "available_engines"]

#: The entry-point group engines register in.
ENTRY_POINT_GROUP = "icdreason.engines"


class _EngineTable(MutableMapping[str, str]):
    """Engine name -> ``"module:Class"``: the entry points of :data:`ENTRY_POINT_GROUP`, read on first use, plus
    whatever :func:`register` added. The first distribution to claim a name keeps it."""

    def __init__(self) -> None:
        self._table: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._table is None:
            from importlib.metadata import entry_points

            table: dict[str, str] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                table.setdefault(ep.name, ep.value)
            self._table = table
        return self._table

    def __getitem__(self, name: str) -> str:
        return self._load()[name]

    def __setitem__(self, name: str, target: str) -> None:
        self._load()[name] = target

    def __delitem__(self, name: str) -> None:
        del self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def reload(self) -> None:
        """Forget the table (the next use reads the entry points again)."""
        self._table = None


#: Every engine known here: ``{"retriever": "icdreason.engines.retriever:RetrieverEngine", ...}``.
ENGINES = _EngineTable()

#: Python packages each engine needs, for a one-line message when one is missing.
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "retriever": (("bm25s", "pip install bm25s"),),
    "transformers": (("torch", "pip install '.[hf]' in the icdreason checkout, or run without --model (the retriever)"),
                     ("transformers", "pip install '.[hf]' in the icdreason checkout, or run without --model (the retriever)")),
    "openai": (("httpx", "pip install httpx"),),
    "vllm": (("vllm", "pip install '.[vllm]' in the icdreason checkout in its own environment on a CUDA host, or use --engine "
                      "transformers (CPU or GPU) or --engine openai --base-url URL (a vLLM server elsewhere)"),),
}


def register(name: str, target: str) -> None:
    """Add or replace an engine: ``register("mine", "my_pkg.engine:MyEngine")``."""
    if ":" not in target:
        raise UsageError(f"engine target {target!r} must look like 'module:Class'")
    ENGINES[name] = target


def available_engines() -> list[str]:
    """Names of the registered engines, sorted."""
    return sorted(ENGINES)


def engine_class(name: str, *, check_requirements: bool = True) -> type[Engine]:
    """Import and return the engine class registered under ``name``. ``check_requirements=False`` skips the check
    that the engine's packages are importable here (for engines that run elsewhere, such as on Ray workers)."""
    target = ENGINES.get(name)
    if target is None:
        if not ENGINES:
            raise DependencyError(f"no engine is registered: the icdreason package's metadata (entry points of "
                                  f"{ENTRY_POINT_GROUP!r}) is missing; install it with `pip install .` or "
                                  f"`pip install -e .` from the checkout")
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(available_engines())}")
    for package, hint in REQUIREMENTS.get(name, ()) if check_requirements else ():
        if importlib.util.find_spec(package) is None:
            raise DependencyError(f"the {name} engine needs the Python package {package!r}: {hint}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise DependencyError(f"the {name} engine is not installed in this build ({module_name} is missing)"
                                  ) from None
        raise DependencyError(f"the {name} engine needs the Python package {exc.name!r}: pip install {exc.name}"
                              ) from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise DependencyError(f"{module_name} has no engine class {class_name!r}") from None


def _vllm_with_cuda() -> bool:
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def choose_engine(engine: str | None, *, model: str | None, base_urls: list[str] | None = None) -> str:
    """The engine to use: the one asked for, else retriever without a model, openai with a --base-url, vllm when
    vllm and CUDA are available, else transformers."""
    if engine:
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r}: choose one of {', '.join(available_engines())}")
        return engine
    if base_urls:
        return "openai"
    if not model:
        return "retriever"
    if _vllm_with_cuda():
        return "vllm"
    return "transformers"
