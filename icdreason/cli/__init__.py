"""The ``icdreason`` command: a typer app whose command groups each live in one small module.

The CLI only parses arguments, calls the library and prints. Library errors (:class:`IcdreasonError`) become one
line on stderr and a non-zero exit code; set ``ICDREASON_DEBUG=1`` for the full traceback.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from .. import __version__


class _Root(TyperGroup):
    """The root group: turns library errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx):
        from ..errors import IcdreasonError

        try:
            return super().invoke(ctx)
        except IcdreasonError as exc:
            from .common import err_console, is_debug

            if is_debug():
                raise
            from rich.markup import escape

            from ..redact import mask

            err_console.print(f"[bold red]error:[/bold red] {escape(mask(str(exc)))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Root,
    name="icdreason",
    help="ICD-10-CM reasoning models from admission notes: predict, validate, evaluate, train, audit.\n\n"
    "Research use only: not for diagnosis or billing without expert review.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"icdreason {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """ICD-10-CM reasoning models from admission notes (research use only)."""


# Command groups: one module each. Keep this list in the order `--help` shows them.
from . import kb as _kb  # noqa: E402
from . import validate as _validate  # noqa: E402

app.add_typer(_kb.app, name="kb")
app.command("validate")(_validate.validate)
from . import eval as _eval  # noqa: E402

app.command("eval")(_eval.evaluate)
from . import scrape as _scrape  # noqa: E402

app.add_typer(_scrape.app, name="scrape")
from . import audit as _audit  # noqa: E402

app.add_typer(_audit.app, name="audit")
from . import predict as _predict  # noqa: E402

app.command("predict")(_predict.predict)
from . import reward as _reward  # noqa: E402
from . import data as _data  # noqa: E402

app.add_typer(_reward.app, name="reward")
app.add_typer(_data.app, name="data")
from . import train as _train  # noqa: E402

app.add_typer(_train.app, name="train")
from . import distill as _distill  # noqa: E402

app.command("distill")(_distill.distill)
# (more command groups are registered below this line)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="icdreason")
