"""Prediction engines behind one protocol (:mod:`.base`), found by name through :mod:`.registry`.

Engine modules are imported only when used, so importing this package stays light.
"""

from .base import Engine, EngineOptions, Generation, Prompt, SamplingParams
from .registry import ENGINES, available_engines, choose_engine, engine_class, register

__all__ = ["ENGINES", "Engine", "EngineOptions", "Generation", "Prompt", "SamplingParams", "available_engines",
           "choose_engine", "engine_class", "register"]
