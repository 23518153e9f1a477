"""Launch commands: what ``--dry-run`` prints and what a run executes, as one object; and how a trl run is carried
out (in this process or through that command)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import IcdreasonError
from .export import TrainSummary, read_summary

if TYPE_CHECKING:
    from .grpo_config import GrpoConfig
    from .sft_config import SftConfig

__all__ = ["CONFIG_FILE", "LaunchPlan", "TrainingFailed", "launch_trl"]

CONFIG_FILE = "train_config.yaml"  # the resolved config, written into the output folder


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


def launch_trl(plan: LaunchPlan, cfg: SftConfig | GrpoConfig, worker: Callable[..., TrainSummary], *,
               progress: Callable[[str], None] | None = None, announce_in_process: bool = True) -> TrainSummary:
    """Run a trl plan: save the resolved config into the output folder, then train in this process (``worker``)
    or through the plan's command (whose summary is read back); the summary gets the wall time and is saved.

    ``progress`` hears the launch command; with ``announce_in_process=False`` only when a child process runs it.
    """
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / CONFIG_FILE)
    if progress and (announce_in_process or not plan.in_process):
        progress(f"launch: {plan.shell()}")
    started = time.monotonic()
    if plan.in_process:
        summary = worker(cfg, progress=progress)
    else:
        plan.run()
        summary = read_summary(out)
    summary.wall_seconds = round(time.monotonic() - started, 2)
    summary.save(out)
    return summary
