"""The ``icdreason`` command: a typer app whose command groups each live in one small module.

The CLI only parses arguments, calls the library and prints. Library errors (:class:`IcdreasonError`) become one
line on stderr and a non-zero exit code; set ``ICDREASON_DEBUG=1`` for the full traceback.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from .. import __version__
from .common import install_type_labels

install_type_labels()


#: The top-level commands in the order a project uses them, the order ``icdreason --help`` lists them: the knowledge
#: base and what fills it, codes, data, a model folder, prediction, scoring, review, traces, rewards, training.
WORKFLOW = ("kb", "scrape", "validate", "data", "model", "predict", "eval", "audit", "distill", "reward", "train")


class _Root(TyperGroup):
    """The root group: turns library errors into one line on stderr and the error's exit code.

    Besides :class:`IcdreasonError`, three kinds of failure from below the library get the same one-line treatment,
    because they can happen anywhere a file is written or read: an ``OSError`` from a full disk or a read-only
    folder, a DuckDB error from a damaged file found by a later query, and Ctrl-C (which DuckDB reports as
    ``RuntimeError: Query interrupted`` when it arrives during a query): "interrupted", exit code 130.
    """

    def list_commands(self, ctx) -> list[str]:
        """The commands in workflow order (:data:`WORKFLOW`), any other after them."""
        names = list(super().list_commands(ctx))
        return sorted(names, key=lambda n: WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW))

    def invoke(self, ctx):
        from ..errors import IcdreasonError

        _tolerant_streams()
        try:
            return super().invoke(ctx)
        except IcdreasonError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            _interrupted()
        except OSError as exc:
            from ..errors import storage_error

            if isinstance(exc, BrokenPipeError) or not _storage_errno(exc):
                raise
            _fail(storage_error(exc))
        except Exception as exc:
            from ..db import explain_later, is_interrupt

            if is_interrupt(exc):
                _interrupted()
            known = explain_later(exc, _stores())
            if known is None:
                raise
            _fail(known)


def _tolerant_streams() -> None:
    """Text that cannot be encoded (a lone surrogate from undecodable bytes in an argument or a file name) is written
    as a backslash escape (``\\udc80``, also a valid JSON escape) instead of failing the command at print time."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change its error handler now
                pass


def _stores():
    from ..audit.store import AUDIT_STORE
    from ..kb.store import KB_STORE
    from ..records.db import STORE

    return (KB_STORE, STORE, AUDIT_STORE)


def _storage_errno(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def _fail(exc) -> None:
    """Print ``error: MESSAGE`` (one line, data shown visibly) and exit with the error's code; with ICDREASON_DEBUG
    set, re-raise the exception being handled instead (its full traceback)."""
    from ..redact import mask
    from .common import err_console, is_debug, markup

    if is_debug():
        raise  # noqa: PLE0704 - called from an except block: the exception being handled
    err_console.print(f"[bold red]error:[/bold red] {markup(mask(str(exc)), single_line=True)}", highlight=False,
                      soft_wrap=True)
    raise typer.Exit(getattr(exc, "exit_code", 1)) from None


def _interrupted() -> None:
    from .common import is_debug, say

    if is_debug():
        raise
    say("interrupted")
    raise typer.Exit(130) from None


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


# Command groups: one module each (`--help` lists them in WORKFLOW order).
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
from . import model as _model  # noqa: E402

app.add_typer(_model.app, name="model")
# (more command groups are registered below this line)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="icdreason")
