"""Every command has help text, appears in the README, and `--help` stays light (no torch)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import typer

from icdreason.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _is_group(command) -> bool:
    # typer vendors its own click, so test for the shape rather than for click.Group
    return hasattr(command, "commands")


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if _is_group(command):
            yield from _commands(command, path)


def all_commands():
    return list(_commands(typer.main.get_command(app)))


def test_every_command_has_help_text():
    missing = [" ".join(path) for path, command in all_commands() if not (command.help or "").strip()]
    assert missing == []


def test_every_command_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    leaves = [path for path, command in all_commands() if not _is_group(command)]
    missing = [" ".join(path) for path in leaves if f"icdreason {' '.join(path)}" not in readme]
    assert missing == []


def test_readme_says_research_use_only():
    readme = (ROOT / "README.md").read_text().lower()
    assert "research" in readme and "billing" in readme and "expert review" in readme


#: Imported only by the command that needs them: the model and plotting libraries, and `audit serve`'s web stack.
HEAVY = ("torch", "transformers", "vllm", "trl", "verl", "ray", "matplotlib", "starlette", "uvicorn", "jinja2",
         "selenium")


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from icdreason.cli import main\n"
        "for argv in (['--help'], *[[*c, '--help'] for c in CMDS]):\n"
        "    sys.argv = ['icdreason', *argv]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in HEAVY if m in sys.modules))\n"
    )
    commands = [list(path) for path, _ in all_commands()]
    done = subprocess.run([sys.executable, "-c", f"CMDS = {commands!r}\nHEAVY = {HEAVY!r}\n" + code],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_version():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--version"])
    assert re.match(r"icdreason \d+\.\d+\.\d+", result.stdout)
