"""Benchmark: what the transformers engine and the predict pipeline add per note over a bare ``generate`` loop.

Run: python bench/engine_overhead.py [--notes 64] [--batch-size 8] [--max-new-tokens 32] [--repeats 3] [--kb PATH]

All rows generate greedily for the same rendered prompts on the same tiny random Qwen2 model (cli_tests/tiny_model.py,
saved to a temporary folder), so the model's own compute is identical and the differences are overhead:

- bare loop: ``apply_chat_template`` + prefill, ``tokenizer(..., padding=True)``, ``model.generate``,
  ``batch_decode``, batch after batch: what one would write by hand;
- engine: ``TransformersEngine.generate`` (rendering, left padding, per-prompt context checks, eos trimming, token
  accounting, the split-and-retry guard);
- engine + constrain: the same with the diagnosis logits processor on every step, outside the tag (the
  processor's one-off build over the knowledge base's billable codes is reported separately);
- in <diagnosis>: the prefill opens the tag so that every step is a code step; constrained vs free with the same
  9-token budget (the most a code, ``</diagnosis>`` and eos take);
- pipeline: ``icdreason.predict.predict`` (notes -> prompts -> engine -> parse -> validate -> vote -> enrich ->
  JSONL records), i.e. ``icdreason predict`` without start-up.

The tiny model makes the model's compute small, so the ratio is an upper bound on the overhead: on a 7B model the
per-note model time grows by orders of magnitude and the same absolute overhead becomes negligible. Each row is the
best of ``--repeats`` rounds, the stages taking turns within each round (the cores are shared); the ratio is
taken on CPU seconds with one torch thread, which other processes on the machine disturb far less than wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "cli_tests"), str(ROOT / "bench")]


def best_of(repeats: int, stages: dict) -> list[tuple[str, float, float]]:
    """Run the stages round-robin ``repeats`` times (so that load changes hit them alike); keep each one's best
    wall time and best CPU time."""
    wall = {name: float("inf") for name in stages}
    cpu = dict(wall)
    for _ in range(repeats):
        for name, run in stages.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            wall[name] = min(wall[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.process_time() - c0)
    return [(name, wall[name], cpu[name]) for name in stages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-note-chars", type=int, default=1200, help="notes are cut to this many characters")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is comparable)")
    parser.add_argument("--kb", default=None, help="knowledge-base file (default: ICDREASON_KB or the home default)")
    args = parser.parse_args()
    console = Console()

    import torch
    from retriever import make_notes
    from tiny_model import build_tiny_model

    from icdreason.engines.hf import TransformersEngine, TransformersOptions
    from icdreason.kb import KnowledgeBase
    from icdreason.notes import Note
    from icdreason.predict import PredictSettings, predict, sampling_for
    from icdreason.prompts import load_template
    from icdreason.records import open_writer

    torch.set_num_threads(args.threads)
    raw = [(i, t[: args.max_note_chars]) for i, t in make_notes(args.notes)]
    template = load_template()
    prompts = [template.render(i, t) for i, t in raw]
    params = sampling_for(1, max_new_tokens=args.max_new_tokens)
    size = args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        kb = KnowledgeBase.open(args.kb)
        engine = TransformersEngine(str(model_dir), TransformersOptions(device="cpu", batch_size=size), kb=kb)
        tok, lm = engine.tokenizer, engine.lm
        texts = [tok.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True) + p.prefill
                 for p in prompts]
        prompt_tokens = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]

        def bare() -> None:
            for j in range(0, len(texts), size):
                batch = tok(texts[j:j + size], padding=True, add_special_tokens=False, return_tensors="pt")
                with torch.inference_mode():
                    out = lm.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id)
                tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)

        def engine_only(constrain: bool = False) -> None:
            p = sampling_for(1, max_new_tokens=args.max_new_tokens, constrain=constrain)
            for j in range(0, len(prompts), size):
                engine.generate(prompts[j:j + size], p)

        # Inside the tag: the prefill opens <diagnosis>, so every step is a constrained code step. A code is at most
        # 7 characters + </diagnosis> + eos, so the unconstrained twin gets the same 9-token budget.
        in_tag = [dataclasses.replace(p, prefill="<think>findings</think><diagnosis>") for p in prompts]

        def code_steps(constrain: bool) -> None:
            p = sampling_for(1, max_new_tokens=9, constrain=constrain)
            for j in range(0, len(in_tag), size):
                engine.generate(in_tag[j:j + size], p)

        t0 = time.perf_counter()
        engine.constraint()
        t_build = time.perf_counter() - t0

        def pipeline() -> None:
            notes = [Note(i, t, f"{i}.txt") for i, t in raw]
            with tempfile.TemporaryDirectory() as out_dir:
                writer = open_writer(Path(out_dir) / "bench.jsonl")
                predict(notes, engine=engine, kb=kb, template=template, params=params, writer=writer, run_id="bench",
                        settings=PredictSettings(batch_size=size, max_note_chars=0))
                writer.close()

        bare()  # warm-up (first-call allocations)
        rows = best_of(args.repeats, {"bare generate loop": bare, "TransformersEngine.generate": engine_only,
                                      "engine + --constrain": lambda: engine_only(True),
                                      "pipeline (predict -> JSONL)": pipeline,
                                      "in <diagnosis>, 9 tokens, free": lambda: code_steps(False),
                                      "in <diagnosis>, 9 tokens, --constrain": lambda: code_steps(True)})

    n = len(raw)
    base, base_cpu = rows[0][1], rows[0][2]
    table = Table(title=f"transformers engine overhead: {n} notes, batch {size}, {args.max_new_tokens} new tokens, "
                        f"prompts {min(prompt_tokens)}-{max(prompt_tokens)} tokens")
    for col in ("stage", "wall s", "CPU s", "CPU ms / note", "overhead CPU ms / note", "ratio to bare (CPU)",
                "ratio (wall)"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, t, c in rows:
        if name == "in <diagnosis>, 9 tokens, --constrain":  # compared with its free twin, not the bare loop
            free = next(r for r in rows if r[0] == "in <diagnosis>, 9 tokens, free")
            table.add_row(name, f"{t:.2f}", f"{c:.2f}", f"{1000 * c / n:.1f}", f"{1000 * (c - free[2]) / n:+.1f}",
                          f"{c / free[2]:.2f} (vs free)", f"{t / free[1]:.2f}")
            continue
        table.add_row(name, f"{t:.2f}", f"{c:.2f}", f"{1000 * c / n:.1f}", f"{1000 * (c - base_cpu) / n:+.1f}",
                      f"{c / base_cpu:.2f}", f"{t / base:.2f}")
    table.add_row("constraint build (once per run)", f"{t_build:.2f}", "", "", "", "", "")
    console.print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores visible, "
                  f"load average {load:.1f}.")


if __name__ == "__main__":
    main()
