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
           "is_debug", "setting_flag", "help_config_table", "RENAMED", "renamed_flag", "renamed_value", "type_label",
           "install_type_labels"]

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


#: Renamed flags: each old spelling -> its new spelling. The old spelling stays accepted for one release, hidden
#: from ``--help``, and prints one deprecation line on stderr when used (docs/cli-conventions.md).
RENAMED: dict[str, str] = {}


def renamed_flag(new: str, *old: str, **kwargs: Any) -> Any:
    """A hidden typer option for the old spelling(s) of a flag renamed to ``new``, for ``Annotated[...]``: accepted
    for one release, it prints ``OLD is deprecated; use NEW`` once on stderr when given. The command takes the value
    with :func:`renamed_value`. ``kwargs`` go to ``typer.Option`` (e.g. ``min``, ``max``)."""
    for spelling in old:
        RENAMED[spelling] = new
    shown = "/".join(old)

    def warn(ctx: typer.Context, value: Any) -> Any:
        if value is not None and value != [] and value != () and not ctx.resilient_parsing:
            err_console.print(f"{shown} is deprecated; use {new}", markup=False, highlight=False)
        return value

    return typer.Option(*old, hidden=True, callback=warn, show_default=False, **kwargs)


def renamed_value(value: Any, old_value: Any, *, default: Any, new: str) -> Any:
    """The value of a renamed flag: the old spelling's when only it was given, else the new one's. Both given with
    different values is a usage error."""
    if old_value is None or old_value == [] or old_value == ():
        return value
    if value != default and value != old_value:
        from ..errors import UsageError

        old = "/".join(o for o, n in RENAMED.items() if n == new)
        raise UsageError(f"{new} and its old spelling {old} disagree: give {new} only")
    return old_value


_SCALAR_LABELS = {bool: "", int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH"}


def type_label(param: Any) -> str:
    """What a user types for a typer parameter, as ``--help`` shows it: nothing for an on/off flag, ``INTEGER``,
    ``FLOAT``, ``TEXT``, ``PATH``, ``a|b`` for choices; a repeatable option or an argument taking several values
    shows the label of one value."""
    import typing

    if getattr(param, "is_flag", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return ""
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    hint = desc.annotation
    if typing.get_origin(hint) in (list, tuple, set):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        hint = args[0] if args else str
    if desc.is_path or (isinstance(hint, type) and issubclass(hint, Path)):
        return "PATH"
    if hint is bool:
        return ""
    return _SCALAR_LABELS.get(hint, "TEXT")


def install_type_labels() -> None:
    """Make ``--help`` show option and argument types the way a user types them (``INTEGER``, ``PATH``, nothing for
    a flag) instead of typer's Python-like ``<int>``, ``<list[str]>``, ``<bool>``. Explicit metavars still win."""
    from typer.core import _TyperParameter

    if getattr(_TyperParameter.display_type, "icdreason", False):
        return

    def display_type(self, ctx) -> str:
        return type_label(self)

    display_type.icdreason = True  # type: ignore[attr-defined]
    _TyperParameter.display_type = display_type  # type: ignore[method-assign]


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
