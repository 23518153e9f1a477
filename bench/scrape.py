"""Scrape benchmark: parser throughput (pages/s) on saved pages, and the guidelines PDF parse time.

Run:  python bench/scrape.py [--pages 2000] [--repeat 3] [--pdf FILE]

The saved pages are the fixture pages of the tests (gesund.bund.de HTML in the site's structure, MedlinePlus Connect
JSON answers), cycled to ``--pages`` pages. Without ``--pdf`` the guidelines PDF is generated with fpdf2 in the real
heading scheme and padded with body text to about the length of the real FY2025 document (~120 pages).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli_tests"))
FIXTURES = ROOT / "cli_tests" / "fixtures" / "scrape"


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def parse_all(source, pages: list[tuple[str, str]]) -> int:
    stored = 0
    for key, text in pages:
        stored += len(source.parse(text, url="https://example.org/", key=key, wanted={key: ""}).descriptions)
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pdf", type=Path, help="A real guidelines PDF to time instead of the generated one.")
    args = parser.parse_args()

    from icdreason.scrape import get_source, parse_pdf

    table = Table(title="icdreason scrape: parsing")
    for col in ("what", "input", "median time", "throughput"):
        table.add_column(col, justify="left" if col in ("what", "input") else "right")

    gesund = get_source("gesund")
    html = [(f.stem.split("-")[0].upper(), f.read_text()) for f in sorted((FIXTURES / "gesund").glob("*.html"))]
    good = [(k, t) for k, t in html if k in ("J45", "I10", "I21", "E11", "M54")]
    pages = [good[i % len(good)] for i in range(args.pages)]
    seconds = timed(lambda: parse_all(gesund, pages), args.repeat)
    table.add_row("gesund.bund.de HTML parser (bs4+lxml)", f"{len(pages):,} pages, ~{len(good[0][1]) // 1000} kB each",
                  f"{seconds:.2f} s", f"{len(pages) / seconds:,.0f} pages/s")

    medline = get_source("medlineplus")
    answers = [(f.stem.replace(".", ""), f.read_text()) for f in sorted((FIXTURES / "medlineplus").glob("*.json"))]
    pages = [answers[i % len(answers)] for i in range(args.pages)]
    seconds = timed(lambda: parse_all(medline, pages), args.repeat)
    table.add_row("MedlinePlus Connect JSON parser", f"{len(pages):,} answers", f"{seconds:.2f} s",
                  f"{len(pages) / seconds:,.0f} pages/s")

    with tempfile.TemporaryDirectory() as tmp:
        pdf = args.pdf
        if pdf is None:
            from guidelines_pdf import build_guidelines_pdf

            pdf = build_guidelines_pdf(Path(tmp) / "guidelines.pdf", repeat_text=115)
        from pypdf import PdfReader

        n_pages = len(PdfReader(str(pdf)).pages)
        sections: list = []
        seconds = timed(lambda: sections.extend(parse_pdf(pdf)), args.repeat)
        table.add_row("guidelines PDF (pypdf + section tree)",
                      f"{n_pages} pages, {len(sections) // args.repeat} sections", f"{seconds:.2f} s",
                      f"{n_pages / seconds:,.0f} pages/s")
    Console().print(table)


if __name__ == "__main__":
    main()
