"""The one protocol every prediction engine implements (retriever, transformers, vllm, openai).

An engine declares its options as a dataclass (unknown options are an error), its capabilities as class attributes,
and implements one method, :meth:`Engine.generate`, over a batch of prompts. Adding an engine means one new module
and one line in :mod:`icdreason.engines.registry`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import UsageError


@dataclass
class Prompt:
    """What an engine receives for one note."""

    note_id: str
    note: str  # the (possibly truncated) note text, for engines that read it directly
    messages: list[dict[str, str]]  # chat messages: system + user
    prefill: str = ""  # text the assistant turn starts with (the reference models start inside "<think>")


@dataclass
class SamplingParams:
    """Decoding settings shared by all engines."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1  # -1: off
    max_new_tokens: int = 1024
    seed: int | None = 0
    constrain: bool = False  # only billable codes inside <diagnosis> (engines with supports_constrain)


@dataclass
class Generation:
    """An engine's answer for one prompt: ``n`` sampled texts (each starting after the prefill) and accounting."""

    texts: list[str]
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    error: str | None = None  # set when the engine failed for this prompt; the batch goes on
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific facts (e.g. retriever evidence, top-k)


@dataclass
class EngineOptions:
    """Base class of engine options. Subclasses add fields with defaults and a ``help`` in their metadata."""

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> EngineOptions:
        """Build options from a dictionary, rejecting keys the engine does not know."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"unknown option(s) for this engine: {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})"
            )
        return cls(**values)


class Engine(ABC):
    """A prediction engine. Subclasses set ``name``, ``Options`` and the capability flags, and implement generate."""

    name: ClassVar[str]
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    uses_llm: ClassVar[bool] = True  # False for the retriever: records say plainly that no language model was used
    supports_constrain: ClassVar[bool] = False
    supports_sampling: ClassVar[bool] = True

    def __init__(self, model: str | None, options: EngineOptions | None = None, kb=None):
        self.model = model
        self.options = options or self.Options()
        self.kb = kb

    @abstractmethod
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """Generate for a batch; one :class:`Generation` per prompt, in order. Must not raise for one bad prompt."""

    def describe(self) -> dict[str, Any]:
        """Engine, model and options, for the run log."""
        return {"engine": self.name, "model": self.model, "options": dataclasses.asdict(self.options)}

    def close(self) -> None:
        """Release models, servers or connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
