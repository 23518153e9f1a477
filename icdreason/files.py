"""Writing one output file (a report, a metrics JSON, a list of rejected rows) safely.

:func:`atomic_write` writes a temporary file in the same folder, flushes it to disk and renames it into place, so a
reader never sees half a file; a target that is not a regular file (``/dev/stdout``, a named pipe, a device) is
written in place instead of being replaced. An ``OSError`` (a full disk, a read-only folder) becomes one
:class:`~icdreason.errors.StorageError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .errors import writing

__all__ = ["atomic_write", "atomic_write_text"]


def _is_special(path: Path) -> bool:
    """True when ``path`` exists and is not a regular file (a device, a pipe, /dev/stdout)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def atomic_write(path: str | os.PathLike[str], write: Callable[[TextIO], None], *, newline: str | None = None) -> Path:
    """Call ``write(fh)`` on a UTF-8 text file that becomes ``path`` only once complete."""
    out = Path(path).expanduser()
    with writing(out):
        if _is_special(out):
            with open(out, "w", encoding="utf-8", newline=newline) as fh:
                write(fh)
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return out


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(text))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (a file's identity in provenance records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
