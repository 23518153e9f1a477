"""Benchmark: format + hierarchical reward for one verl step (batch 64 x 8 rollouts = 512 responses).

Run: python bench/rewards.py [--preset deepicd-r1|icdreason|authors-readme] [--responses 512] [--words 477]
     [--repeat 200]
Prints a table of per-step latency for the batched verl entry point, the per-response entry point and the trl
reward functions, with the preset's components without the judge (deepicd-r1: format, outcome, trace;
icdreason: format, outcome, length, trace).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from rich.console import Console
from rich.table import Table

from icdreason.rewards import RewardConfig, compute_score, compute_score_batch, reward_functions

WORDS = ("patient presents with acute chest pain radiating to the left arm troponin elevated ECG shows ST "
         "depression history of hypertension diabetes smoking differential includes unstable angina NSTEMI "
         "pulmonary embolism aortic dissection findings support").split()
GOLDS = ["I214", "I5023", "J189", "N179", "A419", "K8000", "S72001A", "M5116", "E1165", "I639"]


def make_batch(n: int, words: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    responses, golds = [], []
    for i in range(n):
        gold = GOLDS[(i // 8) % len(GOLDS)]
        trace = " ".join(rng.choice(WORDS) for _ in range(rng.randint(words // 2, words * 3 // 2)))
        kind = rng.random()
        if kind < 0.6:  # well formed, partly correct code
            code = gold[: rng.randint(1, len(gold))] + "9" * rng.randint(0, 2)
            responses.append(f"{trace}</think>\n<diagnosis>{code[:3]}.{code[3:7]}</diagnosis>")
        elif kind < 0.8:  # exact
            responses.append(f"{trace}</think>\n<diagnosis>{gold[:3]}.{gold[3:]}</diagnosis>")
        elif kind < 0.9:  # truncated: no diagnosis
            responses.append(trace)
        else:  # extra blocks
            responses.append(f"{trace}</think><diagnosis>{gold}</diagnosis><diagnosis>R69</diagnosis>")
        golds.append(gold)
    return responses, golds


def timeit(fn, repeat: int) -> list[float]:
    fn()  # warm-up (config cache, regex compilation)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--responses", type=int, default=512)
    ap.add_argument("--words", type=int, default=477, help="mean reasoning length in words (paper Table 2: 477)")
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--preset", default="deepicd-r1", help="reward preset (default: deepicd-r1, the default)")
    args = ap.parse_args()
    os.environ["ICDREASON_REWARD_PRESET"] = args.preset  # what verl's workers read
    responses, golds = make_batch(args.responses, args.words)
    infos = [{"note": "n"} for _ in responses]
    sources = ["mimic-iv-icd10"] * len(responses)
    funcs = reward_functions(RewardConfig(preset=args.preset))
    kwargs = {"reward_model": [{"style": "rule", "ground_truth": g} for g in golds], "extra_info": infos}

    cases = {
        "verl compute_score_batch (1 call)": lambda: compute_score_batch(sources, responses, golds, infos),
        "verl compute_score (512 calls)": lambda: [compute_score(s, r, g, e)
                                                   for s, r, g, e in zip(sources, responses, golds, infos)],
        f"trl reward_functions ({len(funcs)} funcs)": lambda: [f(prompts=None, completions=responses, **kwargs) for f in funcs],
    }
    mean_chars = statistics.mean(len(r) for r in responses)
    table = Table(title=f"Reward for one step ({args.preset}): {len(responses)} responses, mean {mean_chars:.0f} "
                        "characters")
    for col in ("entry point", "min ms", "median ms", "p95 ms", "µs / response (median)"):
        table.add_column(col, justify="right" if col != "entry point" else "left")
    for name, fn in cases.items():
        times = sorted(timeit(fn, args.repeat))
        med = statistics.median(times)
        p95 = times[int(0.95 * (len(times) - 1))]
        table.add_row(name, f"{times[0]:.2f}", f"{med:.2f}", f"{p95:.2f}", f"{1000 * med / len(responses):.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
