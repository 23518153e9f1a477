"""Benchmark: the paper's hierarchical metrics on 1,000,000 predictions, side by side with scikit-learn.

    python bench/eval.py [--rows 1000000] [--repeat 3] [--seed 0]

Synthetic but realistic input: ~6,400 gold codes over every chapter with Zipf-like frequencies (the MIMIC imbalance),
predictions that are right, right up to the category or chapter, random, malformed or missing, in mixed spellings
(dotted/undotted, lower case, stray spaces). Times `icdreason.evaluation.evaluate_codes` (normalisation, label-space
mapping, NIL, all three levels) against scikit-learn's `precision_recall_fscore_support(average="macro",
zero_division=0)` on the same per-level labels, and checks that every macro number agrees. The last row times the
whole file path (`evaluate_files` on a 1M-row Parquet predictions file and a gold CSV, bootstrap off), and the strict
reading of 1M raw responses (`icdreason.parse.strict_answer`, the authors' first think/diagnosis pair, which
`icdreason eval` applies to files that keep the responses).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from icdreason.codes import CHAPTER_RANGES, dotted
from icdreason.evaluation import evaluate_codes, evaluate_files
from icdreason.evaluation.metrics import LEVELS, encode
from icdreason.parse import strict_answer


def make_data(rows: int, seed: int) -> tuple[list[str], list[str | None]]:
    rng = np.random.default_rng(seed)
    starts = [c.first for c in CHAPTER_RANGES if c.first[1:].isdigit()]
    cats = sorted({f"{s[0]}{(int(s[1:]) + k) % 100:02d}" for s in starts for k in range(60)})
    codes = sorted({f"{c}{rng.integers(10)}{rng.integers(10)}" for c in cats for _ in range(6)})[:6400]
    weights = 1.0 / np.arange(1, len(codes) + 1) ** 1.1
    gold_idx = rng.choice(len(codes), size=rows, p=weights / weights.sum())
    gold = [dotted(codes[i]) for i in gold_idx]
    kind = rng.choice(6, size=rows, p=[0.3, 0.2, 0.2, 0.2, 0.05, 0.05])
    rand = rng.integers(len(codes), size=rows)
    pred: list[str | None] = []
    for g, k, r in zip(gold, kind, rand):
        if k == 0:
            pred.append(g.lower() if r % 3 == 0 else g.replace(".", "") if r % 3 == 1 else f" {g} ")
        elif k == 1:
            pred.append(g[:3] + ".9")  # same category, often not a gold code (NIL at code level)
        elif k == 2:
            pred.append(f"{g[0]}{(int(g[1:3]) + 1) % 100:02d}.0")  # neighbouring category
        elif k == 3:
            pred.append(dotted(codes[r]))
        elif k == 4:
            pred.append("no code")
        else:
            pred.append(None)
    return gold, pred


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from sklearn.metrics import precision_recall_fscore_support

    console = Console()
    gold, pred = make_data(args.rows, args.seed)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = evaluate_codes(gold, pred)
        times.append(time.perf_counter() - t0)
    ours_s = min(times)

    enc = encode(gold, pred)
    table = Table(title=f"{args.rows:,} predictions: icdreason vs scikit-learn (macro, zero_division=0)")
    for col in ("Level", "Classes", "icdreason R/P/F1 (%)", "sklearn R/P/F1 (%)", "max |diff|", "sklearn s"):
        table.add_column(col, justify="left" if col == "Level" else "right")
    sk_total, worst = 0.0, 0.0
    for level in LEVELS:
        e = enc[level]
        y_true, y_pred = e.classes[e.y_true], e.classes[e.y_pred]
        t0 = time.perf_counter()
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
        sk = time.perf_counter() - t0
        sk_total += sk
        s = ours[level].macro
        diff = max(abs(s.precision - p), abs(s.recall - r), abs(s.f1 - f))
        worst = max(worst, diff)
        table.add_row(level, f"{ours[level].classes:,}", f"{100 * s.recall:.2f} / {100 * s.precision:.2f} / "
                      f"{100 * s.f1:.2f}", f"{100 * r:.2f} / {100 * p:.2f} / {100 * f:.2f}", f"{diff:.1e}",
                      f"{sk:.2f}")
    console.print(table)

    with tempfile.TemporaryDirectory() as tmp:
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids = [f"n{i}" for i in range(args.rows)]
        gold_path, pred_path = Path(tmp) / "gold.csv", Path(tmp) / "pred.parquet"
        pq.write_table(pa.table({"id": ids, "code": pred}), pred_path)
        gold_path.write_text("id,code\n" + "".join(f"{i},{g}\n" for i, g in zip(ids, gold)))
        t0 = time.perf_counter()
        report = evaluate_files([pred_path], gold_path)
        files_s = time.perf_counter() - t0
        assert abs(report.runs[0].levels["code"].macro.f1 - ours["code"].macro.f1) < 1e-12

    trace = "The patient presents with chest pain radiating to the left arm; troponin is rising. " * 3
    responses = [f"{trace}</think>\n<diagnosis>{p}</diagnosis>" if p is not None and i % 10 else f"{trace}\n{p}"
                 for i, p in enumerate(pred)]
    t0 = time.perf_counter()
    strict = [strict_answer(r) for r in responses]
    strict_s = time.perf_counter() - t0
    assert sum(a is None for a in strict) >= args.rows // 10

    summary = Table(title="Wall time (s)")
    for col in ("What", "Seconds"):
        summary.add_column(col, justify="left" if col == "What" else "right")
    summary.add_row("icdreason evaluate_codes, all 3 levels (best of %d)" % args.repeat, f"{ours_s:.3f}")
    summary.add_row("scikit-learn, 3 levels on the same labels", f"{sk_total:.2f}")
    summary.add_row("speed-up", f"{sk_total / ours_s:.1f}x")
    summary.add_row("numbers agree (max |diff| over P, R, F1 and levels)", f"{worst:.1e}")
    summary.add_row("evaluate_files: read Parquet + gold CSV, join, 3 levels, per-chapter, thirds", f"{files_s:.2f}")
    summary.add_row(f"strict reading of {args.rows:,} responses of ~{len(responses[1])} characters", f"{strict_s:.2f}")
    console.print(summary)


if __name__ == "__main__":
    main()
