"""The one protocol every prediction engine implements (retriever, transformers, vllm, openai).

An engine declares its options as a dataclass on the settings base (unknown options are an error; the names engines
share are :class:`SharedOptions`), its capabilities as class attributes, and implements one method,
:meth:`Engine.generate`, over a batch of prompts. Adding an engine means one new module
and one line in :mod:`icdreason.engines.registry`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, dataclass, field
from typing import Any, ClassVar

from ..errors import ServiceUnavailable
from ..settings import Settings, option


@dataclass
class Prompt:
    """What an engine receives for one note."""

    note_id: str
    note: str  # the (possibly truncated) note text, for engines that read it directly
    messages: list[dict[str, str]]  # chat messages: system + user
    prefill: str = ""  # text the assistant turn starts with (the reference models start inside "<think>")


@dataclass
class SamplingParams(Settings):
    """Decoding settings shared by all engines."""

    n: int = option(1, "Samples per note (self-consistency).", min=1, max=256)
    temperature: float = option(0.0, "Sampling temperature (0: greedy). predict and sampling_for default to 0 for "
                                "one sample and 0.9 for several, as in training.", min=0.0)
    top_p: float = option(1.0, "Nucleus sampling.", min=0.0, max=1.0)
    top_k: int = option(-1, "Top-k sampling (-1: off).")
    min_p: float = option(0.0, "Min-p sampling (0: off; vllm, transformers, openai-compatible servers).", min=0.0,
                          max=1.0)
    repetition_penalty: float = option(1.0, "Repetition penalty (1: off; vllm, transformers, openai-compatible "
                                       "servers).", min=0.0)
    max_new_tokens: int = option(1024, "Generation budget per sample (training used 1024).", min=1)
    seed: int | None = option(0, "Sampling seed.")
    constrain: bool = option(False, "Only billable codes inside <diagnosis> (transformers, vllm; openai with a vLLM "
                             "or SGLang server).")


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
class SharedOptions(Settings):
    """The option names engines share, with their help: ``icdreason predict`` has one flag per field, which sets the
    engine option of the same name (an engine without it refuses the flag). An engine declares the ones it has with
    :func:`shared_option`, so the name, the help and the bounds are written once, here."""

    base_url: list[str] | None = option(None, "OpenAI-compatible server URL; repeat to spread a batch over several "
                                        "servers (openai; default: $OPENAI_BASE_URL, else http://127.0.0.1:8000/v1).")
    api_key_env: str | None = option(None, "Environment variable holding the API key (openai).")
    concurrency: int | None = option(None, "Requests in flight per server (openai).", min=1)
    timeout: float | None = option(None, "Seconds per request in all: a deadline, however slowly the server "
                                   "answers (openai).", min=0.1)
    retries: int | None = option(None, "Retries of a request after 429/5xx/timeouts, with backoff (openai).", min=0)
    tensor_parallel_size: int | None = option(None, "GPUs one model is split over (vllm).", min=1)
    gpu_memory_utilization: float | None = option(None, "Share of GPU memory the engine may take (vllm).", min=0.05,
                                                  max=1.0)
    max_model_len: int | None = option(None, "Context length (vllm; default: the model's).", min=64)
    dtype: str | None = option(None, "auto, bfloat16, float16, float32 (transformers, vllm; auto: bfloat16 on GPUs "
                               "that support it, float32 on the CPU).")
    device: str | None = option(None, "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps (transformers).")


def shared_option(name: str, default: Any = MISSING, *, factory: Callable[[], Any] | None = None) -> Any:
    """An engine option under one of the :class:`SharedOptions` names: the shared help and bounds, this default."""
    return option(default, factory=factory, **SharedOptions.field_of(name).metadata)


@dataclass
class EngineOptions(Settings):
    """Base class of engine options. Subclasses add fields with :func:`~icdreason.settings.option` (a default and a
    help) or, for the shared names, :func:`shared_option`; :meth:`from_dict` rejects keys the engine does not know."""

    @classmethod
    def unknown_keys_message(cls, unknown: list[str], source: str) -> str:
        known = ", ".join(sorted(cls.field_names())) or "none"
        return f"unknown option(s) for this engine: {', '.join(unknown)} (known: {known})"


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
        """Generate for a batch; one :class:`Generation` per prompt, in order. Must not raise for one bad prompt;
        raises :class:`~icdreason.errors.ServiceUnavailable` to stop the run when what it depends on is gone."""

    def stream(self, prompts: Iterable[Prompt], params: SamplingParams, *,
               batch_size: int = 32) -> Iterator[list[tuple[Prompt, Generation]]]:
        """Generate for many prompts, yielding ``(prompt, generation)`` pairs batch by batch (the same ``Prompt``
        objects that were given). A batch whose :meth:`generate` raises gets the error on each of its prompts.

        Here the batches are generated one after the other, in order; an engine that schedules the work elsewhere
        (:class:`icdreason.cluster.RayEngine`) overrides this and yields results as they are ready, in any order.
        """
        batch: list[Prompt] = []
        for prompt in prompts:
            batch.append(prompt)
            if len(batch) >= batch_size:
                yield self._generate_or_fail(batch, params)
                batch = []
        if batch:
            yield self._generate_or_fail(batch, params)

    def _generate_or_fail(self, batch: list[Prompt], params: SamplingParams) -> list[tuple[Prompt, Generation]]:
        try:
            gens = self.generate(batch, params)
            if len(gens) != len(batch):
                raise RuntimeError(f"engine returned {len(gens)} results for {len(batch)} prompts")
        except ServiceUnavailable:  # the server is gone: the caller stops instead of recording every note as failed
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on each prompt of the batch
            gens = [Generation(texts=[], error=f"{type(exc).__name__}: {exc}") for _ in batch]
        return list(zip(batch, gens))

    def describe(self) -> dict[str, Any]:
        """Engine, model and options, for the run log."""
        return {"engine": self.name, "model": self.model, "options": dataclasses.asdict(self.options)}

    def notices(self) -> list[str]:
        """Lines to tell the user before the run starts (e.g. which server is used, and why that one)."""
        return []

    def close(self) -> None:
        """Release models, servers or connections."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
