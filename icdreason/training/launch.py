"""Launch commands: what ``--dry-run`` prints and what a run executes, as one object."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

from ..errors import IcdreasonError

__all__ = ["LaunchPlan", "TrainingFailed"]


class TrainingFailed(IcdreasonError):
    """The launched trainer exited with an error (its own output says why)."""


@dataclass
class LaunchPlan:
    """A training launch: the command line, the environment it adds, and whether it runs in this process."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    in_process: bool = False  # single-process trl runs execute here; the argv is the equivalent command
    notes: list[str] = field(default_factory=list)  # facts to show with --dry-run (warnings about this machine)

    def shell(self) -> str:
        """The exact command, as one shell line (environment assignments first)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        cmd = " ".join(shlex.quote(a) for a in self.argv)
        return f"{env} {cmd}" if env else cmd

    def run(self) -> None:
        """Run the command as a child process, streaming its output; a non-zero exit raises :class:`TrainingFailed`."""
        env = {**os.environ, **self.env}
        try:
            proc = subprocess.Popen(self.argv, env=env, stdout=sys.stdout, stderr=sys.stderr)
        except FileNotFoundError:
            raise TrainingFailed(f"cannot start {self.argv[0]!r}: is it installed in this environment?") from None
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        if code != 0:
            raise TrainingFailed(f"{self.argv[0]} {self.argv[1] if len(self.argv) > 1 else ''} exited with status "
                                 f"{code}: see its output above; rerun with --resume-from latest to continue")
