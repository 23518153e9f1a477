"""The ``transformers`` engine: Hugging Face ``generate`` on the CPU or a GPU, batched with left padding.

Prompts are rendered with the model's chat template plus the prefill (see :mod:`icdreason.engines.chat`), sorted by
length and generated ``batch_size`` at a time; ``n`` samples per prompt come from ``num_return_sequences`` (greedy
decoding computes one answer and repeats it). ``constrain=True`` adds the whole-answer logits processor of
:mod:`icdreason.engines.constrain`: reasoning, ``</think>``, ``<diagnosis>`` + a billable code + ``</diagnosis>``,
closed within ``max_new_tokens``. A batch that fails is retried prompt by prompt, so one bad prompt only costs its
own record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import DependencyError, EngineError, UsageError
from ..settings import option
from .base import Engine, EngineOptions, Generation, Prompt, SamplingParams, shared_option
from .chat import check_chat_template, encode, eos_ids, render

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class TransformersOptions(EngineOptions):
    """Options of the transformers engine."""

    device: str = shared_option("device", "auto")
    dtype: str = shared_option("dtype", "auto")
    batch_size: int = option(8, "Prompts per generate call.")
    attn_implementation: str | None = option(None, "Attention kernel: eager, sdpa, flash_attention_2 (default: the "
                                             "model's).")
    trust_remote_code: bool = option(False, "Run code shipped with the model.")
    revision: str | None = option(None, "Hub revision (branch, tag or commit).")
    code_format: str = option("either", "How codes may be written inside <diagnosis> when constraining: "
                              "either (M5116 or M51.16), undotted or dotted.")

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if self.batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        from .constrain import check_code_form

        check_code_form(self.code_format)


def _import_torch_transformers():
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise DependencyError(
            f"the transformers engine needs torch and transformers ({exc.name} is missing): "
            f"pip install '.[hf]' in the icdreason checkout, or use --engine openai with a server"
        ) from None
    return torch, transformers


def pick_device(requested: str, torch) -> str:
    """Resolve ``auto`` to cuda, mps or cpu; check that an explicit GPU exists."""
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DependencyError(f"device {requested} asked for but CUDA is not available: use --device cpu")
    return requested


def pick_dtype(requested: str, device: str, torch):
    """``auto``: bfloat16 on a GPU that supports it, float16 on other GPUs, float32 on the CPU."""
    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class TransformersEngine(Engine):
    """Hugging Face ``generate`` over a local directory or a hub model."""

    name: ClassVar[str] = "transformers"
    Options: ClassVar[type[EngineOptions]] = TransformersOptions
    supports_constrain: ClassVar[bool] = True

    def __init__(self, model: str | None, options: EngineOptions | None = None, kb=None):
        super().__init__(model, options, kb)
        torch, transformers = _import_torch_transformers()
        from ..models import resolve_model

        opts: TransformersOptions = self.options  # type: ignore[assignment]
        resolved = resolve_model(model or "", revision=opts.revision)
        self.model_path = resolved.path
        self.device = pick_device(opts.device, torch)
        self.dtype = pick_dtype(opts.dtype, self.device, torch)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(resolved.path), trust_remote_code=opts.trust_remote_code
            )
            dtype_key = "dtype" if _version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
            kwargs: dict[str, Any] = {dtype_key: self.dtype, "trust_remote_code": opts.trust_remote_code}
            if opts.attn_implementation:
                kwargs["attn_implementation"] = opts.attn_implementation
            self.lm = transformers.AutoModelForCausalLM.from_pretrained(str(resolved.path), **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot load {resolved.display}: {' '.join(str(exc).split())[:300]}") from None
        self.lm.to(self.device).eval()
        check_chat_template(self.tokenizer, resolved.display)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos = eos_ids(self.tokenizer, self.lm.generation_config)
        self.context_length: int | None = getattr(self.lm.config, "max_position_embeddings", None)
        self._constraint = None
        self._torch = torch

    # -- the protocol ------------------------------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """Generate ``params.n`` answers for each prompt; a prompt that fails gets ``error`` set."""
        if params.constrain:
            self.constraint()  # a missing knowledge base is a usage error for the whole run, raised here
        out: list[Generation | None] = [None] * len(prompts)
        encoded: list[tuple[int, list[int]]] = []
        for i, prompt in enumerate(prompts):
            try:
                ids = encode(self.tokenizer, render(self.tokenizer, prompt))
            except Exception as exc:  # a template that rejects these messages
                out[i] = Generation(texts=[], error=f"cannot render the prompt: {_one_line(exc)}")
                continue
            if self.context_length and len(ids) >= self.context_length:
                out[i] = Generation(
                    texts=[], tokens_in=len(ids),
                    error=f"prompt has {len(ids)} tokens, the model's context is {self.context_length}: shorten the note",
                )
                continue
            encoded.append((i, ids))
        encoded.sort(key=lambda item: len(item[1]), reverse=True)
        size = self.options.batch_size  # type: ignore[attr-defined]
        for start in range(0, len(encoded), size):
            chunk = encoded[start : start + size]
            for (i, _), gen in zip(chunk, self._generate_or_split(chunk, prompts, params)):
                out[i] = gen
        return [g if g is not None else Generation(texts=[], error="not generated") for g in out]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(model_path=str(self.model_path), device=self.device, dtype=str(self.dtype).replace("torch.", ""))
        return info

    def close(self) -> None:
        self.lm = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    # -- internals ---------------------------------------------------------------------------------------------------
    def _generate_or_split(self, chunk, prompts, params) -> list[Generation]:
        try:
            return self._generate_chunk(chunk, prompts, params)
        except Exception as exc:
            if len(chunk) == 1:
                return [Generation(texts=[], tokens_in=len(chunk[0][1]), error=f"generation failed: {_one_line(exc)}")]
            if self.device.startswith("cuda"):
                self._torch.cuda.empty_cache()
            return [g for item in chunk for g in self._generate_or_split([item], prompts, params)]

    def constraint(self):
        """The diagnosis constraint for this tokenizer and the knowledge base's billable codes (built once)."""
        if self._constraint is None:
            from .constrain import DiagnosisConstraint, billable_code_strings

            form = self.options.code_format  # type: ignore[attr-defined]
            self._constraint = DiagnosisConstraint(self.tokenizer, billable_code_strings(self.kb, form=form),
                                                   eos_ids=self.eos)
        return self._constraint

    def _generate_chunk(self, chunk, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        torch = self._torch
        from transformers import LogitsProcessorList

        width = max(len(ids) for _, ids in chunk)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids in chunk], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids in chunk], device=self.device)
        sample = params.temperature > 0
        n_run = params.n if sample else 1
        max_new = params.max_new_tokens
        if self.context_length:
            max_new = max(1, min(max_new, self.context_length - width))
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new, do_sample=sample,
            num_return_sequences=n_run, pad_token_id=pad, eos_token_id=sorted(self.eos),
        )
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=max(params.top_k, 0))
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        kwargs["repetition_penalty"] = params.repetition_penalty  # explicit: not the model's generation config
        if sample and params.min_p > 0:
            kwargs["min_p"] = params.min_p
        if params.constrain:
            prefills = [prompts[i].prefill for i, _ in chunk for _ in range(n_run)]
            kwargs["logits_processor"] = LogitsProcessorList([self.constraint().processor(prefills, max_new)])
        if sample and params.seed is not None:
            torch.manual_seed(params.seed)
        started = time.perf_counter()
        with torch.inference_mode():
            sequences = self.lm.generate(**kwargs)
        seconds = (time.perf_counter() - started) / len(chunk)
        new_tokens = sequences[:, width:].tolist()
        results = []
        for j, (_, ids) in enumerate(chunk):
            texts, reasons, used = [], [], 0
            for row in new_tokens[j * n_run : (j + 1) * n_run]:
                text, count, reason = self._decode(row)
                texts.append(text)
                reasons.append(reason)
                used += count
            if n_run < params.n:  # greedy: every sample is the same answer
                texts, reasons, used = texts * params.n, reasons * params.n, used * params.n
            results.append(Generation(texts=texts, tokens_in=len(ids), tokens_out=used, seconds=seconds,
                                      extra={"finish_reasons": reasons}))
        return results

    def _decode(self, row: list[int]) -> tuple[str, int, str]:
        """Text up to the first end-of-sequence token, tokens used, and why it stopped (stop / length)."""
        for k, token in enumerate(row):
            if token in self.eos:
                return self.tokenizer.decode(row[:k], skip_special_tokens=False), k + 1, "stop"
        return self.tokenizer.decode(row, skip_special_tokens=False), len(row), "length"


def _version_at_least(version: str, wanted: tuple[int, int]) -> bool:
    """``"4.57.1"`` >= ``(4, 56)``; unparsable versions count as new."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= wanted


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"
