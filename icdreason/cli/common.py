"""What every command shares: consoles, the --kb option, opening the knowledge base, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ..kb import KnowledgeBase

#: Tables and results go to stdout; progress, warnings and errors to stderr.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

KbOption = Annotated[
    Optional[Path],
    typer.Option("--kb", help="Knowledge-base file (default: $ICDREASON_KB, else the per-user data directory).",
                 envvar="ICDREASON_KB", show_envvar=True),
]


def say(message: str) -> None:
    """A progress or status line on stderr."""
    err_console.print(message, markup=False)


def open_kb(path: Path | None, *, build_if_missing: bool = True) -> KnowledgeBase:
    """Open the knowledge base for a command, building it on first use with a visible message."""
    from ..kb import KnowledgeBase

    return KnowledgeBase.open(path, build_if_missing=build_if_missing, progress=say)


def disclaimer() -> None:
    from .. import DISCLAIMER

    err_console.print(f"[dim]{DISCLAIMER}[/dim]")


def is_debug() -> bool:
    return bool(os.environ.get("ICDREASON_DEBUG"))
