"""Engine names -> ``"module:Class"``, imported only when an engine is used; and the automatic choice.

Built-in engines register exactly like a third-party one would: one line in :data:`ENGINES` (or
:func:`register` at run time). Nothing heavy is imported here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import TYPE_CHECKING

from ..errors import DependencyError, UsageError

if TYPE_CHECKING:
    from .base import Engine

__all__ = ["ENGINES", "register", "engine_class", "choose_engine", "available_engines"]

ENGINES: dict[str, str] = {
    "retriever": "icdreason.engines.retriever:RetrieverEngine",
    "transformers": "icdreason.engines.hf:TransformersEngine",
    "openai": "icdreason.engines.openai_engine:OpenAIEngine",
    "vllm": "icdreason.engines.vllm_engine:VllmEngine",
}

#: Python packages each engine needs, for a one-line message when one is missing.
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "retriever": (("bm25s", "pip install bm25s"),),
    "transformers": (("torch", "pip install 'icdreason[hf]', or run without --model (the retriever)"),
                     ("transformers", "pip install 'icdreason[hf]', or run without --model (the retriever)")),
    "openai": (("httpx", "pip install httpx"),),
    "vllm": (("vllm", "pip install 'icdreason[vllm]' in its own environment on a CUDA host, or use --engine "
                      "transformers (CPU or GPU) or --engine openai --base-url URL (a vLLM server elsewhere)"),),
}


def register(name: str, target: str) -> None:
    """Add or replace an engine: ``register("mine", "my_pkg.engine:MyEngine")``."""
    if ":" not in target:
        raise UsageError(f"engine target {target!r} must look like 'module:Class'")
    ENGINES[name] = target


def available_engines() -> list[str]:
    return list(ENGINES)


def engine_class(name: str) -> type[Engine]:
    """Import and return the engine class registered under ``name``."""
    target = ENGINES.get(name)
    if target is None:
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    for package, hint in REQUIREMENTS.get(name, ()):
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
            raise UsageError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
        return engine
    if base_urls:
        return "openai"
    if not model:
        return "retriever"
    if _vllm_with_cuda():
        return "vllm"
    return "transformers"
