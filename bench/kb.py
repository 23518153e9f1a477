"""Knowledge-base benchmark: build time, open time, `icdreason --help` start-up, validation throughput.

Run:  python bench/kb.py [--codes 1000000] [--repeat 5]

Validation throughput is measured on the same 1,000,000 mixed codes (billable, header, unknown, malformed; dotted,
undotted, lower-case, with stray spaces) for icdreason's vectorised `KnowledgeBase.statuses` (cold: a fresh index
with an empty memo; warm: the same codes again) and for simple_icd_10_cm's own `is_valid_item`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def timed(fn, repeat: int, setup=None) -> float:
    """Median wall time of ``repeat`` calls of ``fn(setup())`` (setup not timed), or of ``fn()``."""
    runs = []
    for _ in range(repeat):
        arg = setup() if setup else None
        started = time.perf_counter()
        fn(arg) if setup else fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def fresh_copies(codes: list[str]) -> list[str]:
    """New string objects with the same text: Python caches a string's hash in the object, so reusing the same
    objects across repeats (or across the two libraries) would hide the cost of hashing the input."""
    return [(c + ".")[:-1] for c in codes]


def mixed_codes(kb, n: int, seed: int = 0) -> list[str]:
    """n codes: 70% billable, 10% headers, 12% unknown, 8% malformed, in assorted spellings."""
    rng = random.Random(seed)
    billable = kb.billable_codes()
    headers = [r[0] for r in kb.con.execute(
        "SELECT code FROM codes WHERE NOT billable AND kind IN ('category', 'subcategory')").fetchall()]
    unknown = [c[:-1] + "Q" if not c.endswith("Q") else c[:-1] + "W" for c in billable[::7]]
    malformed = ["", "??", "1234", "I2", "hello", "M51.16789", "I21-4", "Z"] * 50
    pools = [(billable, 0.70), (headers, 0.10), (unknown, 0.12), (malformed, 0.08)]
    out = []
    for _ in range(n):
        pick = rng.random()
        for pool, share in pools:
            if pick < share:
                code = rng.choice(pool)
                break
            pick -= share
        else:
            code = rng.choice(billable)
        style = rng.random()
        if style < 0.3:
            code = code.replace(".", "")
        elif style < 0.4:
            code = code.lower()
        elif style < 0.45:
            code = f" {code} "
        out.append(code)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from icdreason.kb import KnowledgeBase, build_kb
    from icdreason.kb.validation import CodeIndex

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kb.duckdb"
        bare = Path(tmp) / "bare.duckdb"
        bare_build_s = timed(lambda: build_kb(bare, force=True, shipped_index=False), max(1, args.repeat // 2))
        rows.append(("KB build from the April-2026 XML, without the index", f"{bare_build_s:.2f} s", ""))
        build_s = timed(lambda: build_kb(path, force=True), max(1, args.repeat // 2))
        rows.append(("KB build from the April-2026 XML + the shipped index", f"{build_s:.2f} s", "< 15 s"))
        rows.append(("KB file size without / with the index",
                     f"{bare.stat().st_size / 1e6:.1f} / {path.stat().st_size / 1e6:.1f} MB", ""))

        def open_close():
            KnowledgeBase.open(path).close()

        open_s = timed(open_close, args.repeat)
        rows.append(("KB open (connect + schema check)", f"{open_s * 1000:.0f} ms", "< 300 ms"))

        with KnowledgeBase.open(path) as kb:
            index_s = timed(lambda: CodeIndex.from_db(kb.con), args.repeat)
            rows.append(("code index load (first validation)", f"{index_s * 1000:.0f} ms", ""))
            alpha_s = timed(kb._load_index, max(1, args.repeat // 2))
            rows.append(("Alphabetic Index load (first lookup)", f"{alpha_s * 1000:.0f} ms", ""))
            codes = mixed_codes(kb, args.codes)

            index = CodeIndex.from_db(kb.con)

            def fresh_index_and_input():
                _fresh(index)
                return fresh_copies(codes)

            cold_s = timed(index.statuses, args.repeat, setup=fresh_index_and_input)
            index.statuses(codes)
            warm_s = timed(index.statuses, args.repeat, setup=lambda: fresh_copies(codes))
            n = len(codes)
            rows.append((f"validate {n:,} codes, icdreason (fresh index)", f"{n / cold_s / 1e6:.2f} M codes/s", ">= 2 M/s"))
            rows.append((f"validate {n:,} codes, icdreason (same codes again)", f"{n / warm_s / 1e6:.2f} M codes/s", ""))
            statuses = index.statuses(codes)

        import simple_icd_10_cm as cm

        cm.is_valid_item("I10")  # load its data outside the timing
        simple_s = timed(lambda batch: [cm.is_valid_item(c) for c in batch], args.repeat,
                         setup=lambda: fresh_copies(codes))
        rows.append((f"validate {n:,} codes, simple_icd_10_cm.is_valid_item", f"{n / simple_s / 1e6:.2f} M codes/s",
                     "reference"))

    help_s = timed(lambda: subprocess.run([sys.executable, "-m", "icdreason", "--help"], capture_output=True,
                                          check=True), args.repeat)
    bare_s = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat)
    rows.append(("`icdreason --help` start-up", f"{help_s * 1000:.0f} ms", "< 200 ms"))
    rows.append(("  of which bare Python start-up", f"{bare_s * 1000:.0f} ms", ""))

    table = Table(title="icdreason knowledge-base benchmark")
    table.add_column("measure")
    table.add_column("result", justify="right")
    table.add_column("target")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    from collections import Counter

    console.print("status mix:", dict(Counter(statuses)))


def _fresh(index):
    """The same index with a fresh memo (only the canonical spellings), as right after loading."""
    index._memo = dict(index._seed)
    return index


if __name__ == "__main__":
    main()
