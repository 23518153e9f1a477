"""Library exceptions. Each message says what went wrong and what to do about it; the CLI prints it in one line."""

from __future__ import annotations


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
