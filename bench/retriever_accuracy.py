"""Benchmark: the retriever's accuracy on labelled note sets (chapter, category and code of its answer; top-5 recall).

Run: python bench/retriever_accuracy.py [--kb PATH] [--set DIR ...] [--per-note]
A set is a folder with ``notes/<id>.txt`` and ``labels.csv`` (``id,code``: the expected first-listed code). Defaults:
``examples/`` (12 notes), ``bench/retriever_heldout/`` (12) and ``bench/index_heldout/`` (41, written before the
Alphabetic Index work was tuned). A note answered with no code counts as wrong at every level (and is counted).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SETS = [ROOT / "examples", ROOT / "bench" / "retriever_heldout", ROOT / "bench" / "index_heldout"]


def load_set(folder: Path) -> list[tuple[str, str, str]]:
    """(id, note text, gold code) for each labelled note of a set."""
    with (folder / "labels.csv").open(newline="") as fh:
        gold = {row["id"]: row["code"] for row in csv.DictReader(fh)}
    return [(i, (folder / "notes" / f"{i}.txt").read_text(), code) for i, code in sorted(gold.items())]


def score_set(engine, notes: list[tuple[str, str, str]]) -> tuple[dict[str, int], list[tuple[str, str, str, bool]]]:
    """Counts (code, category, chapter, top5, no_code, n) and per-note rows (id, gold, answer, gold in top 5)."""
    from icdreason.codes import chapter_of, normalize

    counts = dict.fromkeys(("code", "category", "chapter", "top5", "no_code"), 0)
    rows = []
    for note_id, text, gold in notes:
        candidates = [normalize(c) for c, _ in engine.analyze(text)["candidates"]]
        answer = candidates[0] if candidates else ""
        want = normalize(gold)
        chapter_gold, chapter_answer = chapter_of(want), chapter_of(answer) if answer else None
        counts["code"] += answer == want
        counts["category"] += bool(answer) and answer[:3] == want[:3]
        counts["chapter"] += chapter_answer is not None and chapter_gold is not None and \
            chapter_answer.number == chapter_gold.number
        counts["top5"] += want in candidates[:5]
        counts["no_code"] += not answer
        rows.append((note_id, gold, answer, want in candidates[:5]))
    counts["n"] = len(notes)
    return counts, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", default=None, help="knowledge-base file (default: ICDREASON_KB or the home default)")
    parser.add_argument("--set", dest="sets", action="append", type=Path, help="a labelled set folder (repeatable)")
    parser.add_argument("--per-note", action="store_true", help="print every note's answer")
    parser.add_argument("--no-index", action="store_true", help="retriever option index=false (the coding rules stay)")
    args = parser.parse_args()
    console = Console()

    from icdreason.engines.retriever import RetrieverEngine
    from icdreason.kb import KnowledgeBase

    options = RetrieverEngine.Options(index=False) if args.no_index else None
    with KnowledgeBase.open(args.kb) as kb, RetrieverEngine(kb=kb, options=options) as engine:
        table = Table(title="retriever accuracy (top-1 answer; top-5 recall of the gold code)")
        for col in ("set", "notes", "code", "category", "chapter", "top-5", "no code"):
            table.add_column(col, justify="left" if col == "set" else "right", no_wrap=True)
        for folder in args.sets or SETS:
            counts, rows = score_set(engine, load_set(folder))
            n = counts["n"]
            table.add_row(folder.relative_to(ROOT).as_posix() if folder.is_relative_to(ROOT) else str(folder),
                          str(n), *(f"{counts[k]} ({100 * counts[k] / n:.0f}%)" for k in
                                    ("code", "category", "chapter", "top5")), str(counts["no_code"]))
            if args.per_note:
                for note_id, gold, answer, top5 in rows:
                    mark = "=" if answer == gold.replace(".", "") else ("~" if top5 else "x")
                    console.print(f"  {mark} {note_id:28} gold {gold:9} answer {answer or '-'}")
        console.print(table)


if __name__ == "__main__":
    main()
