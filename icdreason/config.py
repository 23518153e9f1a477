"""Where icdreason keeps its files, and the environment variables that move them.

- ``ICDREASON_HOME``: the data directory (default: the per-user data directory, e.g. ``~/.local/share/icdreason``).
- ``ICDREASON_KB``: the knowledge-base file (default: ``$ICDREASON_HOME/icd10cm.duckdb``).
- ``ICDREASON_DEBUG``: when set, the CLI shows full tracebacks instead of one-line errors.
"""

from __future__ import annotations

import os
from pathlib import Path

KB_FILENAME = "icd10cm.duckdb"


def home_dir() -> Path:
    """The icdreason data directory (not created here)."""
    env = os.environ.get("ICDREASON_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("icdreason", appauthor=False))


def kb_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the knowledge-base path: an explicit ``--kb`` value, then ``ICDREASON_KB``, then the home default."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ICDREASON_KB")
    if env:
        return Path(env).expanduser()
    return home_dir() / KB_FILENAME


def debug() -> bool:
    """True when full tracebacks were asked for."""
    return bool(os.environ.get("ICDREASON_DEBUG"))
