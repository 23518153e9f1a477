"""What every command shares: consoles, the --kb option, opening the knowledge base, one-line errors, and the
display helpers every printed value from data goes through (:mod:`icdreason.display`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from ..display import cell, markup, visible

__all__ = ["console", "err_console", "KbOption", "cell", "markup", "visible", "say", "open_kb", "disclaimer",
           "is_debug", "setting_flag", "help_config_table"]

if TYPE_CHECKING:
    from ..kb import KnowledgeBase
    from ..settings import Settings

#: Tables and results go to stdout; progress, warnings and errors to stderr.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

KbOption = Annotated[
    Optional[Path],
    typer.Option("--kb", help="Knowledge-base file (default: $ICDREASON_KB, else the per-user data directory).",
                 envvar="ICDREASON_KB", show_envvar=True),
]


def setting_flag(settings: type[Settings], name: str, *decls: str, **kwargs: Any) -> Any:
    """A typer option for one settings field, for ``Annotated[...]``: its help and its ``min``/``max`` bounds come
    from the field's metadata (written once, where the field is declared), and its value is shown the way a user
    types it (``INTEGER``, ``FLOAT``, ``PATH``, ``a,b,c``; nothing for an on/off flag). ``decls`` default to
    ``--field-name``; ``kwargs`` go to ``typer.Option`` (e.g. ``metavar``)."""
    metadata = settings.field_of(name).metadata
    label = settings.type_label(name)
    options = {"help": metadata["help"], "metavar": "" if label == "true/false" else label}
    options.update((bound, metadata[bound]) for bound in ("min", "max") if bound in metadata)
    return typer.Option(*(decls or ("--" + name.replace("_", "-"),)), **{**options, **kwargs})


def help_config_table(settings: type[Settings], title: str):
    """Every field of a settings class with its type (as a user types it), default and help: ``--help-config``."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in ("field", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for name, default, text in settings.describe():
        table.add_row(name, settings.type_label(name), cell(default), cell(text))
    return table


def say(message: str) -> None:
    """A progress or status line on stderr (no markup; credentials in URLs masked; control characters from data
    shown visibly)."""
    from ..redact import mask

    err_console.print(visible(mask(message)), markup=False)


def open_kb(path: Path | None, *, build_if_missing: bool = True) -> KnowledgeBase:
    """Open the knowledge base for a command, building it on first use with a visible message."""
    from ..kb import KnowledgeBase

    return KnowledgeBase.open(path, build_if_missing=build_if_missing, progress=say)


def disclaimer() -> None:
    from .. import DISCLAIMER

    err_console.print(f"[dim]{DISCLAIMER}[/dim]")


def is_debug() -> bool:
    return bool(os.environ.get("ICDREASON_DEBUG"))
