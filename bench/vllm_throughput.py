"""Benchmark (GPU hosts): ``icdreason predict`` with the vllm engine against vLLM's own offline throughput.

Run on a CUDA machine with vllm installed:
    python bench/vllm_throughput.py --model DeepICD-R1-7B [--notes 500] [--n 1] [--max-new-tokens 1024]
           [--tensor-parallel-size 1] [--gpu-memory-utilization 0.9] [--max-model-len 4096] [--kb PATH]

One ``vllm.LLM`` is built (through ``VllmEngine``, so both sides share the same engine settings and KV cache), then
the same rendered prompts (synthetic 1-3 KB admission notes, chat template + ``<think>`` prefill) go through:

- vLLM alone: one ``LLM.generate`` call over the token prompts, nothing else (the throughput ceiling);
- the engine: ``VllmEngine.generate`` with structured output off, ``format`` (the default) and ``billable``
  (``--constrain``), to show what the regex constraints cost;
- the pipeline: ``icdreason.predict.predict`` (parse, validate, vote, enrich, JSONL records) with the default
  structured output, i.e. ``icdreason predict --engine vllm`` without start-up, batch ``--batch-size`` notes.

Reported: wall seconds, notes/s, generated tokens/s and the ratio to vLLM alone. Without vllm or CUDA the script
says so and exits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="alias, hub id or local directory")
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--n", type=int, default=1, help="samples per note")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256, help="notes per engine call in the pipeline")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--kb", default=None)
    parser.add_argument("--skip-constrained", action="store_true", help="skip the billable-code row")
    args = parser.parse_args()
    console = Console()

    from icdreason.engines.vllm_engine import VllmEngine, VllmOptions, check_available
    from icdreason.errors import DependencyError

    try:
        check_available()
    except DependencyError as exc:
        from rich.markup import escape

        console.print(f"[red]cannot run:[/red] {escape(str(exc))}")
        return 1

    from retriever import make_notes

    from icdreason.engines.chat import encode, render
    from icdreason.kb import KnowledgeBase
    from icdreason.notes import Note
    from icdreason.predict import PredictSettings, predict, sampling_for
    from icdreason.prompts import load_template
    from icdreason.records import open_writer

    kb = KnowledgeBase.open(args.kb)
    opts = VllmOptions(tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
                       gpu_memory_utilization=args.gpu_memory_utilization)
    t0 = time.perf_counter()
    engine = VllmEngine(args.model, opts, kb=kb)
    t_load = time.perf_counter() - t0

    raw = make_notes(args.notes)
    template = load_template()
    prompts = [template.render(i, t) for i, t in raw]
    params = sampling_for(args.n, max_new_tokens=args.max_new_tokens)
    rows: list[tuple[str, float, int]] = []

    from vllm import SamplingParams as VSamplingParams

    from icdreason.engines.vllm_engine import sampling_kwargs

    ids = [encode(engine.tokenizer, render(engine.tokenizer, p)) for p in prompts]
    sp = VSamplingParams(**sampling_kwargs(params))
    engine.llm.generate([{"prompt_token_ids": x} for x in ids[:8]], sp, use_tqdm=False)  # warm-up
    t0 = time.perf_counter()
    outs = engine.llm.generate([{"prompt_token_ids": x} for x in ids], sp, use_tqdm=False)
    rows.append(("vLLM alone (LLM.generate)", time.perf_counter() - t0,
                 sum(len(s.token_ids) for o in outs for s in o.outputs)))

    modes = ["off", "format"] + ([] if args.skip_constrained else ["billable"])
    for mode in modes:
        engine.options.structured_output = "off" if mode == "billable" else mode
        p = sampling_for(args.n, max_new_tokens=args.max_new_tokens, constrain=mode == "billable")
        t0 = time.perf_counter()
        gens = engine.generate(prompts, p)
        rows.append((f"VllmEngine.generate, structured output {mode}", time.perf_counter() - t0,
                     sum(g.tokens_out for g in gens)))
    engine.options.structured_output = "format"

    notes = [Note(i, t, f"{i}.txt") for i, t in raw]
    with tempfile.TemporaryDirectory() as tmp:
        writer = open_writer(Path(tmp) / "bench.jsonl")
        t0 = time.perf_counter()
        summary = predict(notes, engine=engine, kb=kb, template=template, params=params, writer=writer,
                          run_id="bench", settings=PredictSettings(batch_size=args.batch_size))
        rows.append((f"pipeline (predict -> JSONL, batch {args.batch_size})", time.perf_counter() - t0,
                     summary.tokens_out))
        writer.close()

    base = rows[0][1]
    table = Table(title=f"{args.model}: {len(raw)} notes, n={args.n}, max {args.max_new_tokens} new tokens "
                        f"(model load {t_load:.0f} s)")
    for col in ("stage", "wall s", "notes/s", "generated tokens/s", "time vs vLLM alone"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, seconds, tokens in rows:
        table.add_row(name, f"{seconds:.1f}", f"{len(raw) / seconds:.2f}", f"{tokens / seconds:.0f}",
                      f"{seconds / base:.2f}")
    console.print(table)
    import torch

    console.print(f"GPU: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}; vllm "
                  f"{__import__('vllm').__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
