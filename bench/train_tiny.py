"""CPU benchmark of the training path with the 40k-parameter test model: `train sft` -> `predict` -> format rate.

    python bench/train_tiny.py [--rows 240] [--epochs 2]

Prints a table: SFT steps, wall time, steps per second, first and last logged loss, and the format-valid rate of greedy
`icdreason predict --engine transformers` answers (no --constrain) before and after training, then three trl GRPO
steps with the real rewards. Uses a temporary folder; nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli_tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tiny_model import build_tiny_model  # noqa: E402
from train_helpers import write_notes_jsonl, write_rl_parquet, write_sft_parquet, write_template  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from icdreason.cli import app  # noqa: E402


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    if result.exit_code:
        raise SystemExit(f"icdreason {' '.join(args[:2])} failed: {result.stderr}")


def _format_rate(model: Path, notes: Path, template: Path, work: Path) -> float:
    preds = work / f"preds-{model.name}.jsonl"
    _run(["predict", "--engine", "transformers", "--model", str(model), str(notes), "-o", str(preds),
          "--prompt-template", str(template), "--max-new-tokens", "40", "--no-enrich", "--quiet", "--overwrite"])
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    return sum(r["format_ok"] for r in records) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        import os

        os.environ["ICDREASON_HOME"] = str(work / "home")
        tiny = build_tiny_model(work / "tiny")
        template = write_template(work / "template.txt")
        data = write_sft_parquet(work / "sft.parquet", rows=args.rows, template=template)
        notes = write_notes_jsonl(work / "notes.jsonl", rows=40)
        before = _format_rate(tiny, notes, template, work)
        out = work / "sft"
        started = time.monotonic()
        _run(["train", "sft", "--model", str(tiny), "--train", str(data), "-o", str(out), "--report-to", "none",
              "--epochs", str(args.epochs), "--batch-size", "8", "--per-device-batch-size", "8", "--lr", "1e-2",
              "--warmup-steps", "5", "--max-length", "256", "--set", "save_steps=100000"])
        sft_seconds = time.monotonic() - started
        summary = json.loads((out / "training_summary.json").read_text())
        after = _format_rate(out, notes, template, work)
        rl = write_rl_parquet(work / "rl.parquet", rows=16, template=template)
        grpo = work / "grpo"
        started = time.monotonic()
        _run(["train", "grpo", "--backend", "trl", "--model", str(out), "--train", str(rl), "-o", str(grpo),
              "--report-to", "none", "--train-batch-size", "4", "--rollout-n", "4", "--max-steps", "3",
              "--max-response-length", "32", "--lr", "1e-4", "--set", "micro_batch_size_per_gpu=8",
              "--set", "warmup_steps=0", "--set", "temperature=0.3", "--set", "save_freq=100000"])
        grpo_seconds = time.monotonic() - started
        grpo_summary = json.loads((grpo / "training_summary.json").read_text())

    table = Table(title="icdreason train on the CPU (40k-parameter Qwen2 test model)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("SFT rows x epochs", f"{args.rows} x {args.epochs}")
    table.add_row("SFT steps (batch 8)", str(summary["steps"]))
    table.add_row("SFT wall time (command)", f"{sft_seconds:.1f} s")
    table.add_row("SFT steps / s (trainer)", f"{summary['steps'] / summary['metrics']['train_runtime']:.2f}")
    table.add_row("loss first -> last log", f"{summary['first_loss']:.3f} -> {summary['final_loss']:.3f}")
    table.add_row("format-valid rate before SFT", f"{before:.2f}")
    table.add_row("format-valid rate after SFT", f"{after:.2f}")
    table.add_row("GRPO (trl) 3 steps, 4 prompts x 4 rollouts", f"{grpo_seconds:.1f} s")
    for key in sorted(k for k in grpo_summary["metrics"] if k.startswith("rewards/") and k.endswith("/mean")):
        table.add_row(f"GRPO last step {key}", f"{grpo_summary['metrics'][key]:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
