"""Library exceptions. Each message says what went wrong and what to do about it; the CLI prints it in one line."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager


def install_hint(extra: str) -> str:
    """How to install one of icdreason's extras (pyproject.toml), said the way that works: icdreason is installed
    from its checkout, not from PyPI. The brackets are part of the command; printers escape them (rich markup)."""
    return f"pip install '.[{extra}]' in the icdreason checkout"


class IcdreasonError(Exception):
    """Base class of every error icdreason raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(IcdreasonError):
    """The user asked for something that cannot work as given (bad option value, wrong file shape)."""

    exit_code = 2


class KnowledgeBaseError(IcdreasonError):
    """The knowledge base is missing, corrupt, of an older schema, or not writable."""


class InputError(IcdreasonError):
    """An input file is missing, unreadable or not in the expected format."""

    exit_code = 2


class DependencyError(IcdreasonError):
    """An optional dependency (an extra) or a device (CUDA) that a command needs is not available."""


class EngineError(IcdreasonError):
    """A prediction engine could not load its model or reach its server."""


class ServiceUnavailable(EngineError):
    """A server the run depends on keeps failing (nothing listening, every request an error): the run stops, keeping
    the records already written, instead of recording every remaining note as an error."""


class LockedError(IcdreasonError):
    """Another run is writing the same output (``--out``, ``--db``): one run writes a file at a time."""


class StorageError(IcdreasonError):
    """A file could not be written (or read): the disk is full, the file system is read-only, permission denied."""


_STORAGE_FIXES = {
    errno.ENOSPC: "free some space or write to another disk",
    errno.EDQUOT: "free some space (disk quota exceeded) or write to another disk",
    errno.EFBIG: "write to another file system or split the output",
    errno.EROFS: "write to a writable location",
    errno.EACCES: "check the permissions or write to another location",
    errno.EPERM: "check the permissions or write to another location",
    errno.EIO: "check the disk",
}


def storage_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> StorageError:
    """A one-line error for an ``OSError`` met while writing ``path`` (else the file the error names)."""
    where = path if path is not None else exc.filename
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = _STORAGE_FIXES.get(exc.errno or 0, "check the path and the disk")
    return StorageError(f"{where}: {what}: {fix}" if where is not None else f"{what}: {fix}")


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Around writes to ``path``: an ``OSError`` (full disk, read-only file system) becomes a :class:`StorageError`
    naming the file."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, path) from exc
