"""CSV cells that a spreadsheet would run as formulas, neutralised on the way out and restored on the way in.

A text cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice and
Google Sheets as a formula (``=HYPERLINK("http://…")``, ``=cmd|' /C calc'!A0``): CSV injection. As OWASP advises,
every CSV that icdreason writes prefixes such text cells with a single quote (``'=HYPERLINK(…)``), which a
spreadsheet shows as text. Numbers stay numbers (``-0.5`` written from a float is not touched); only text is.

The rule is reversible: a text cell that starts with quotes followed by one of those characters gets one more
quote, so :func:`restore` (one quote removed from such cells) gives back exactly what was written, ``'=x`` included.
The one table reader (:mod:`icdreason.tables`) restores every CSV/TSV cell it reads, so ids, codes and comments
come back as they were when icdreason reads its own CSV files (predictions, the audit's pending decisions, rejected
rows).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["FORMULA_START", "neutralize", "restore", "CsvWriter"]

#: The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_START = "=+-@\t\r"
_NEUTRALIZED = re.compile("^'+[" + re.escape(FORMULA_START) + "]")


def neutralize(value: Any) -> Any:
    """``value`` made safe for a CSV cell: a text starting like a formula gets a leading ``'``; other values are
    returned as they are (numbers, ``None``)."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in FORMULA_START or _NEUTRALIZED.match(value):
        return "'" + value
    return value


def restore(value: Any) -> Any:
    """The text :func:`neutralize` was given: one leading ``'`` removed from a cell of quotes and a formula start."""
    if isinstance(value, str) and value[:1] == "'" and _NEUTRALIZED.match(value):
        return value[1:]
    return value


def restore_arrow(column):
    """:func:`restore` over an Arrow string column (vectorised)."""
    import pyarrow.compute as pc

    return pc.replace_substring_regex(column, pattern="^'('*[" + re.escape(FORMULA_START) + "])",
                                      replacement="\\1", max_replacements=1)


class CsvWriter:
    """``csv.writer`` (the standard dialect) whose text cells are neutralised: what every CSV output uses."""

    def __init__(self, fh: TextIO):
        self._writer = csv.writer(fh)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralize(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
