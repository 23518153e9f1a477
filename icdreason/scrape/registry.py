"""Symptom-source names -> ``"module:Class"``, imported only when a source is used.

Adding a source is one new module (a :class:`~icdreason.scrape.sources.SymptomSource` subclass) and one line in
:data:`SOURCES` (or :func:`register` at run time, for a source that lives elsewhere).
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .sources import SymptomSource

__all__ = ["SOURCES", "get_source", "register", "source_class", "source_names"]

SOURCES: dict[str, str] = {
    "gesund": "icdreason.scrape.gesund:GesundBund",
    "medlineplus": "icdreason.scrape.medlineplus:MedlinePlusConnect",
}


def register(name: str, target: str) -> None:
    """Add or replace a source: ``register("mine", "my_pkg.source:MySource")``."""
    if ":" not in target:
        raise UsageError(f"source target {target!r} must look like 'module:Class'")
    SOURCES[name] = target


def source_names() -> list[str]:
    return sorted(SOURCES)


def source_class(name: str) -> type[SymptomSource]:
    """Import and return the source class registered under ``name``."""
    target = SOURCES.get(name)
    if target is None:
        raise UsageError(f"unknown source {name!r}: choose one of {', '.join(source_names())}")
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_source(name: str, base_url: str | None = None) -> SymptomSource:
    """The source called ``name`` (``gesund`` or ``medlineplus``), optionally pointed at a mirror or test server."""
    return source_class(name)(base_url)
