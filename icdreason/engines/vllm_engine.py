"""The ``vllm`` engine: offline batch generation with ``vllm.LLM`` on one or more GPUs.

Prompts are rendered with the model's chat template plus the prefill (as the other local engines do), tokenized
here so that their lengths are known, and handed to ``LLM.generate`` as token prompts in one call; vLLM schedules
them with continuous batching, and prefix caching (on by default) shares the system prompt's KV cache across notes.
Structured output keeps the diagnosis well-formed (``structured_output="format"``, the default) or, with
``--constrain``, restricted to billable codes of the knowledge base (see :mod:`icdreason.engines.constrain`).

vllm is imported only when the engine is built. The argument building is pure (:func:`llm_kwargs`,
:func:`sampling_kwargs`) so that it is tested without vllm or a GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import DependencyError, EngineError, UsageError
from ..settings import option
from .base import Engine, EngineOptions, Generation, Prompt, SamplingParams, shared_option

STRUCTURED = ("off", "format", "billable")
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class VllmOptions(EngineOptions):
    """Options of the vllm engine (names follow ``vllm serve``)."""

    tensor_parallel_size: int = shared_option("tensor_parallel_size", 1)
    gpu_memory_utilization: float = shared_option("gpu_memory_utilization", 0.9)
    max_model_len: int | None = shared_option("max_model_len", None)
    dtype: str = shared_option("dtype", "auto")
    seed: int = option(0, "Engine seed.")
    enable_prefix_caching: bool = option(True, "Share the KV cache of common prefixes.")
    max_num_seqs: int | None = option(None, "Sequences scheduled at once.")
    enforce_eager: bool = option(False, "No CUDA graphs (faster start, slower decode).")
    quantization: str | None = option(None, "awq, gptq, fp8 … (default: from the model).")
    trust_remote_code: bool = option(False, "Run code shipped with the model.")
    revision: str | None = option(None, "Hub revision.")
    structured_output: str = option("format", "off; format: the diagnosis must be a well-formed code; billable: a "
                                    "billable code (--constrain turns format into billable).")
    code_format: str = option("either", "How codes may be written inside <diagnosis> when constraining: "
                              "either (M5116 or M51.16), undotted or dotted.")

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise UsageError("tensor_parallel_size must be at least 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError("gpu_memory_utilization must be in (0, 1]")
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if self.structured_output not in STRUCTURED:
            raise UsageError(f"structured_output must be one of {', '.join(STRUCTURED)}")
        from .constrain import check_code_form

        check_code_form(self.code_format)


def llm_kwargs(model: str, options: VllmOptions) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` (unset optional values are left to vLLM's defaults)."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "dtype": options.dtype,
        "seed": options.seed,
        "enable_prefix_caching": options.enable_prefix_caching,
        "enforce_eager": options.enforce_eager,
        "trust_remote_code": options.trust_remote_code,
    }
    for name in ("max_model_len", "max_num_seqs", "quantization", "revision"):
        value = getattr(options, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def structured_mode(options: VllmOptions, params: SamplingParams) -> str:
    """The structured-output mode in force: ``--constrain`` upgrades ``format`` to ``billable``; ``off`` stays off
    unless ``--constrain`` asks for it."""
    if params.constrain:
        return "billable"
    return "off" if options.structured_output == "off" else options.structured_output


def sampling_kwargs(params: SamplingParams, *, max_tokens: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` (without structured output; see :func:`structured_regex`).

    Greedy decoding (temperature 0) asks for one answer (older vLLM rejects ``n > 1`` there); the engine repeats it
    ``n`` times, as the transformers engine does. ``top_k`` is only passed when set, since vLLM's "off" value
    changed from -1 to 0 across versions.
    """
    sample = params.temperature > 0
    kwargs: dict[str, Any] = {
        "n": params.n if sample else 1,
        "temperature": params.temperature,
        "top_p": params.top_p if sample else 1.0,
        "max_tokens": max_tokens if max_tokens is not None else params.max_new_tokens,
    }
    if params.top_k > 0 and sample:
        kwargs["top_k"] = params.top_k
    if params.min_p > 0 and sample:
        kwargs["min_p"] = params.min_p
    if params.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = params.repetition_penalty
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs


def check_available() -> None:
    """Raise a one-line :class:`DependencyError` when vllm or CUDA is missing."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise DependencyError(
            "the vllm engine needs vllm (pip install '.[vllm]' in the icdreason checkout on a CUDA machine): "
            "use --engine transformers, or --engine openai with a server"
        )
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        raise DependencyError("the vllm engine needs a CUDA GPU and none is visible: use --engine transformers or openai")


class VllmEngine(Engine):
    """Offline ``vllm.LLM`` batch generation."""

    name: ClassVar[str] = "vllm"
    Options: ClassVar[type[EngineOptions]] = VllmOptions
    supports_constrain: ClassVar[bool] = True

    def __init__(self, model: str | None, options: EngineOptions | None = None, kb=None):
        super().__init__(model, options, kb)
        check_available()
        from ..models import resolve_model

        opts: VllmOptions = self.options  # type: ignore[assignment]
        resolved = resolve_model(model or "", revision=opts.revision)
        self.model_path = resolved.path
        import vllm

        try:
            self.llm = vllm.LLM(**llm_kwargs(str(resolved.path), opts))
        except Exception as exc:
            raise EngineError(f"vLLM could not load {resolved.display}: {' '.join(str(exc).split())[:300]}") from None
        self.tokenizer = self.llm.get_tokenizer()
        from .chat import check_chat_template

        check_chat_template(self.tokenizer, resolved.display)
        self.context_length: int | None = _max_model_len(self.llm) or opts.max_model_len
        self._regex: dict[tuple[str, bool], str] = {}

    def structured_regex(self, mode: str, prefill: str) -> str | None:
        """The regex imposed on answers under ``mode`` (None when off), cached per mode and prefill kind."""
        if mode == "off":
            return None
        from .constrain import billable_code_strings, diagnosis_regex

        key = (mode, "<think>" in prefill)
        if key not in self._regex:
            form = self.options.code_format  # type: ignore[attr-defined]
            codes = billable_code_strings(self.kb, form=form) if mode == "billable" else None
            self._regex[key] = diagnosis_regex(mode, codes, prefill=prefill, form=form)
        return self._regex[key]

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """One ``LLM.generate`` call for the whole batch; a prompt that vLLM rejects is retried alone."""
        from vllm import SamplingParams as VSamplingParams

        from .chat import encode, render
        from .constrain import vllm_structured_kwargs

        mode = structured_mode(self.options, params)  # type: ignore[arg-type]
        out: list[Generation | None] = [None] * len(prompts)
        jobs: list[tuple[int, list[int], Any]] = []
        for i, prompt in enumerate(prompts):
            try:
                ids = encode(self.tokenizer, render(self.tokenizer, prompt))
            except Exception as exc:
                out[i] = Generation(texts=[], error=f"cannot render the prompt: {exc}")
                continue
            room = (self.context_length or 0) - len(ids)
            if self.context_length and room < 1:
                out[i] = Generation(texts=[], tokens_in=len(ids), error=(
                    f"prompt has {len(ids)} tokens, the model's context is {self.context_length}: shorten the note"))
                continue
            kwargs = sampling_kwargs(params, max_tokens=min(params.max_new_tokens, room) if room > 0 else None)
            regex = self.structured_regex(mode, prompt.prefill)
            if regex is not None:
                kwargs.update(vllm_structured_kwargs(regex))
            jobs.append((i, ids, VSamplingParams(**kwargs)))
        for (i, _, _), gen in zip(jobs, self._run(jobs, params.n)):
            out[i] = gen
        return [g if g is not None else Generation(texts=[], error="not generated") for g in out]

    def _run(self, jobs, n: int) -> list[Generation]:
        if not jobs:
            return []
        started = time.perf_counter()
        try:
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids} for _, ids, _ in jobs], [sp for _, _, sp in jobs], use_tqdm=False
            )
        except Exception as exc:
            if len(jobs) == 1:
                return [Generation(texts=[], tokens_in=len(jobs[0][1]), error=f"vLLM failed: {exc}")]
            return [g for job in jobs for g in self._run([job], n)]
        seconds = (time.perf_counter() - started) / len(jobs)
        return [_to_generation(o, seconds, n) for o in outputs]

    def close(self) -> None:
        self.llm = None


def _max_model_len(llm) -> int | None:
    """The context length vLLM settled on (where it lives moved between vLLM versions)."""
    engine = getattr(llm, "llm_engine", None)
    for holder in (getattr(llm, "model_config", None), getattr(engine, "model_config", None),
                   getattr(getattr(engine, "vllm_config", None), "model_config", None)):
        value = getattr(holder, "max_model_len", None)
        if isinstance(value, int):
            return value
    return None


def _to_generation(output, seconds: float, n: int) -> Generation:
    """A vLLM ``RequestOutput`` as a :class:`Generation`; a single greedy answer is repeated ``n`` times."""
    samples = list(output.outputs)
    texts = [s.text for s in samples]
    reasons = [s.finish_reason or "stop" for s in samples]
    used = sum(len(s.token_ids) for s in samples)
    if len(samples) == 1 and n > 1:
        texts, reasons, used = texts * n, reasons * n, used * n
    return Generation(texts=texts, tokens_in=len(output.prompt_token_ids or []), tokens_out=used, seconds=seconds,
                      extra={"finish_reasons": reasons})
