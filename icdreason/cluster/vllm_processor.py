"""``--engine vllm --ray``: generation through ``ray.data.llm``'s vLLM processor (Ray >= 2.53).

The pipeline: prompt rows -> :class:`PromptRenderer` (CPU actors: the model's chat template plus the prefill, token
ids, one row per sample) -> the processor built from :func:`processor_config` (``--replicas`` vLLM engines of
``--tensor-parallel-size`` GPUs each; ``concurrency=(replicas, replicas)`` fixes the count) -> rows of text that the
driver gathers back into one :class:`~icdreason.engines.base.Generation` per note (:class:`SampleCollector`).

What ``ray.data.llm`` does differently from ``vllm.LLM``, and how it is handled here:

- prompts are rendered and tokenised by us (its chat-template and tokenize stages are off), exactly as the local
  vllm engine does, so the model sees the same ids;
- ``n > 1`` would return one sample only: a note that is sampled ``n`` times becomes ``n`` rows (seeds
  ``seed + k``); a greedy note is one row whose answer is repeated ``n`` times, as locally;
- it reports no finish reason: a sample that used all of its ``max_tokens`` counts as cut (``length``);
- structured output (the answer format) goes into each row's sampling parameters; ``--constrain`` (every billable
  code in a regex) would copy that regex into every row and is refused here;
- a request that fails comes back as a row with ``__inference_error__`` (``should_continue_on_error``): that note's
  error; a vLLM replica that dies is restarted and its batch retried, at most ``MAX_RETRIES`` times.

Building the processor needs torch and transformers on the driver (``ray.data.llm`` imports them) and the model's
tokenizer files; the workers need ``pip install 'ray[llm]'`` (vLLM). Before anything starts the cluster must show
``replicas x tensor_parallel_size`` GPUs (:meth:`RayPlan.check <icdreason.cluster.plan.RayPlan.check>`): without
them Ray would wait forever for the replicas.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Iterator
from typing import Any

from ..engines.base import Generation, Prompt, SamplingParams
from ..errors import DependencyError, UsageError
from .plan import RayPlan

__all__ = ["PromptRenderer", "SampleCollector", "build_processor", "check_driver", "processor_config",
           "sampling_row", "samples_per_note", "vllm_stream"]

ENGINE_STAGE = "vLLMEngineStage"
#: CPUs reserved by the light stages around the engine (rendering, picking columns), so that on a small cluster they
#: and the vLLM replicas fit together (a stage that cannot be placed makes the whole pipeline wait).
LIGHT_CPUS = 0.25


def check_driver() -> None:
    """What the driver of a vLLM run on Ray needs: ``ray.data.llm`` (Ray >= 2.53 with pydantic and aiohttp) and
    torch + transformers (the processor imports them)."""
    from .connect import RAY_INSTALL_HINT, require_ray

    require_ray()
    try:
        importlib.import_module("ray.data.llm")
    except ImportError as exc:
        raise DependencyError(f"--engine vllm --ray needs ray.data.llm ({exc}): {RAY_INSTALL_HINT}") from None
    for package in ("torch", "transformers"):
        if importlib.util.find_spec(package) is None:
            raise DependencyError(f"--engine vllm --ray needs {package} on the driver (ray.data.llm imports it): "
                                  "pip install '.[hf]' in the icdreason checkout")


def samples_per_note(params: SamplingParams) -> int:
    """Rows per note: ``n`` when sampling, 1 for greedy decoding (its answer is repeated)."""
    return params.n if params.temperature > 0 else 1


def sampling_row(params: SamplingParams, *, sample: int, max_tokens: int, regex: str | None,
                 structured_key: str = "structured_outputs") -> dict[str, Any]:
    """The ``sampling_params`` of one row: the local engine's settings for one sample (``n=1``; the seed moves by
    the sample's number so that samples differ), plus the structured-output regex when there is one."""
    from ..engines.vllm_engine import sampling_kwargs

    row = sampling_kwargs(dataclasses.replace(params, n=1), max_tokens=max_tokens)
    row["n"] = 1
    row["seed"] = None if params.seed is None else params.seed + sample
    if regex is not None:
        row[structured_key] = {"regex": regex}
    return row


def structured_key() -> str:
    """The key the installed Ray reads structured output from (``structured_outputs`` since Ray 2.5x,
    ``guided_decoding`` before)."""
    import inspect

    try:
        from ray.llm._internal.batch.stages import vllm_engine_stage
    except ImportError:
        return "structured_outputs"
    return "structured_outputs" if '"structured_outputs"' in inspect.getsource(vllm_engine_stage) \
        else "guided_decoding"


def model_source(model: str | None) -> str:
    """What the processor loads: a local directory (absolute) or a hub id (aliases expanded)."""
    from pathlib import Path

    from ..models import expand_alias

    if not model:
        raise UsageError("--engine vllm needs --model (a hub id or a local directory)")
    local = Path(model).expanduser()
    return str(local.resolve()) if local.exists() else expand_alias(model)


def processor_config(model: str | None, options, plan: RayPlan, *, batch_size: int):
    """The ``vLLMEngineProcessorConfig``: ``plan.replicas`` engines (a fixed count), the vllm engine's options as
    engine arguments (tensor parallelism among them), our own rendering, per-row errors kept."""
    from ray.data.llm import vLLMEngineProcessorConfig

    from ..engines.vllm_engine import llm_kwargs

    engine_kwargs = {k: v for k, v in llm_kwargs(model_source(model), options).items() if k != "model"}
    return vLLMEngineProcessorConfig(
        model_source=model_source(model), engine_kwargs=engine_kwargs, batch_size=batch_size,
        concurrency=(plan.replicas, plan.replicas), chat_template_stage=False, tokenize_stage=False,
        detokenize_stage=False, should_continue_on_error=True)


def _postprocess(row: dict[str, Any]) -> dict[str, Any]:
    return {"seq": row["seq"], "sample": row["sample"], "text": row.get("generated_text") or "",
            "tokens_in": row.get("num_input_tokens") or 0, "tokens_out": row.get("num_generated_tokens") or 0,
            "max_tokens": row["max_tokens"], "seconds": row.get("time_taken_llm") or 0.0}


def _preprocess(row: dict[str, Any]) -> dict[str, Any]:
    return {"tokenized_prompt": [int(t) for t in row["tokenized_prompt"]], "prompt": row["prompt"],
            "sampling_params": row["sampling_params"]}


def build_processor(model: str | None, options, plan: RayPlan, *, batch_size: int):
    """The processor (needs a connected Ray), with Ray's restarts of a dead vLLM replica capped."""
    from ray.data.llm import build_processor as build

    light = {"num_cpus": LIGHT_CPUS}  # picking columns: never what keeps a replica from being placed
    processor = build(processor_config(model, options, plan, batch_size=batch_size), preprocess=_preprocess,
                      postprocess=_postprocess, preprocess_map_kwargs=light, postprocess_map_kwargs=light)
    processor.get_stage_by_name(ENGINE_STAGE).map_batches_kwargs.update(
        max_restarts=plan.max_retries, max_task_retries=plan.max_retries)
    return processor


class PromptRenderer:
    """CPU actors: chat template + prefill -> token ids, ``samples`` rows per note with their sampling parameters."""

    def __init__(self, model: str, options, params: SamplingParams, key: str):
        from transformers import AutoConfig, AutoTokenizer

        from ..engines.chat import check_chat_template
        from ..models import resolve_model

        resolved = resolve_model(model, revision=options.revision)
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.path), trust_remote_code=options.trust_remote_code)
        check_chat_template(self.tokenizer, resolved.display)
        self.context = options.max_model_len or getattr(
            AutoConfig.from_pretrained(str(resolved.path), trust_remote_code=options.trust_remote_code),
            "max_position_embeddings", None)
        self.options, self.params, self.key = options, params, key
        self._regex: dict[bool, str | None] = {}

    def regex(self, prefill: str) -> str | None:
        from ..engines.constrain import diagnosis_regex
        from ..engines.vllm_engine import structured_mode

        think = "<think>" in prefill
        if think not in self._regex:
            mode = structured_mode(self.options, self.params)
            self._regex[think] = None if mode == "off" else diagnosis_regex(
                mode, prefill=prefill, dotted=self.options.code_format == "dotted")
        return self._regex[think]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from ..engines.chat import encode, render
        from .workers import row_prompt

        out: dict[str, list] = {k: [] for k in ("seq", "sample", "prompt", "tokenized_prompt", "max_tokens",
                                                "sampling_params")}
        for i in range(len(batch["seq"])):
            prompt = row_prompt({k: batch[k][i] for k in batch})
            text = render(self.tokenizer, prompt)
            ids = encode(self.tokenizer, text)
            room = (self.context - len(ids)) if self.context else self.params.max_new_tokens
            max_tokens = max(1, min(self.params.max_new_tokens, room))  # no room: vLLM reports the long prompt
            for sample in range(samples_per_note(self.params)):
                out["seq"].append(int(batch["seq"][i]))
                out["sample"].append(sample)
                out["prompt"].append(text)
                out["tokenized_prompt"].append(ids)
                out["max_tokens"].append(max_tokens)
                out["sampling_params"].append(sampling_row(self.params, sample=sample, max_tokens=max_tokens,
                                                           regex=self.regex(prompt.prefill), structured_key=self.key))
        return out


class SampleCollector:
    """Gathers the processor's rows (any order) into one :class:`Generation` per note once all its samples are in."""

    def __init__(self, params: SamplingParams):
        self.n = params.n
        self.rows_per_note = samples_per_note(params)
        self.parts: dict[int, list[dict[str, Any]]] = {}

    def add(self, row: dict[str, Any]) -> tuple[int, Generation] | None:
        """Take one output row; return ``(seq, generation)`` when it completes its note."""
        seq = int(row["seq"])
        parts = self.parts.setdefault(seq, [])
        parts.append(row)
        if len(parts) < self.rows_per_note:
            return None
        del self.parts[seq]
        return seq, self.generation(sorted(parts, key=lambda r: int(r["sample"])))

    def generation(self, rows: list[dict[str, Any]]) -> Generation:
        failed = next((r for r in rows if r.get("__inference_error__")), None)
        if failed is not None:
            return Generation(texts=[], tokens_in=int(failed.get("num_input_tokens") or 0),
                              error=f"vLLM failed: {' '.join(str(failed['__inference_error__']).split())[:300]}")
        texts = [str(r["text"]) for r in rows]
        used = sum(int(r["tokens_out"]) for r in rows)
        reasons = ["length" if int(r["tokens_out"]) >= int(r["max_tokens"]) else "stop" for r in rows]
        if len(rows) == 1 and self.n > 1:  # greedy: one answer stands for the n samples
            texts, reasons, used = texts * self.n, reasons * self.n, used * self.n
        return Generation(texts=texts, tokens_in=int(rows[0]["tokens_in"]), tokens_out=used,
                          seconds=float(sum(float(r["seconds"] or 0) for r in rows)), extra={"finish_reasons": reasons})


def vllm_stream(engine, items: list[Prompt], params: SamplingParams,
                batch_size: int) -> Iterator[list[tuple[Prompt, Generation]]]:
    """Generate ``items`` through the processor on the connected cluster (``engine`` is the RayEngine)."""
    import ray

    from .failures import capped_restarts, library_error
    from .workers import blocks_for, prompt_rows

    if params.constrain:
        raise UsageError("--constrain is not available with --engine vllm --ray (the billable-code regex would be "
                         "copied into every row): use --engine transformers --ray, or --engine vllm without --ray")
    plan: RayPlan = engine.plan
    ds = ray.data.from_items(prompt_rows(items, list(range(len(items)))),
                             override_num_blocks=blocks_for(len(items), batch_size, plan.replicas))
    with capped_restarts():
        ds = ds.map_batches(
            PromptRenderer, fn_constructor_kwargs={"model": engine.model, "options": engine.options,
                                                   "params": params, "key": structured_key()},
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=plan.replicas), num_cpus=LIGHT_CPUS,
            batch_size=batch_size, batch_format="numpy", max_restarts=plan.max_retries,
            max_task_retries=plan.max_retries)
    collector = SampleCollector(params)
    seen: set[int] = set()
    try:
        for batch in build_processor(engine.model, engine.options, plan, batch_size=batch_size)(ds).iter_batches(
                batch_size=None, batch_format="pyarrow"):
            done = [got for got in map(collector.add, batch.to_pylist()) if got is not None]
            seen.update(seq for seq, _ in done)
            if done:
                yield [(items[seq], gen) for seq, gen in done]
    except Exception as exc:  # noqa: BLE001
        raise library_error(exc) from None
    missing = [seq for seq in range(len(items)) if seq not in seen]
    if missing:
        yield [(items[seq], Generation(texts=[], error="the vLLM processor returned no output for this note"))
               for seq in missing]
