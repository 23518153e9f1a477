"""One writer per output file: an exclusive lock taken before the file is read, trimmed or written.

:meth:`FileLock.acquire` locks a hidden file beside the output (``.NAME.lock``) with ``flock`` and writes who holds
it (pid, host, start time, the command, credentials masked) into it. A second process, or a second writer in the same
process, gets a :class:`~icdreason.errors.LockedError` whose one-line message names the holder. The kernel releases
the lock when its process ends, however it ends, so a lock file left by a killed run is simply taken over; where the
file system has no ``flock``, a lock file whose pid is no longer running on this host is taken over instead. Forked
children (worker processes of an engine) close their inherited copy, so a leftover child never keeps a dead run's
lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import LockedError, UsageError
from .redact import mask

__all__ = ["FileLock", "lock_path"]

_HELD: set[int] = set()  # file descriptors of the locks this process holds


def _close_inherited() -> None:
    """In a forked child: close the copies of the parent's lock descriptors (the parent keeps its lock)."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` in the same folder."""
    p = Path(target)
    return p.with_name(f".{p.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    started = holder.get("started")
    command = holder.get("command")
    return (f"pid {pid} on {host}" + (f", started {started}" if started else "")
            + (f": {command}" if command else ""))


class FileLock:
    """An exclusive lock on one output file, held until :meth:`release` (or the end of the process)."""

    def __init__(self, target: Path, path: Path, fd: int | None):
        self.target = target
        self.path = path
        self._fd = fd
        self._pid = os.getpid()  # a forked child's copy of this object must not release the parent's lock

    @classmethod
    def acquire(cls, target: str | os.PathLike[str], *, fix: str = "wait for it to finish or choose another --out",
                command: str | None = None) -> FileLock:
        """Lock ``target`` (creating its folder if needed) or raise :class:`LockedError` naming the holder.

        ``command`` (default: this process's command line) is recorded with the pid, host and time; credentials in
        it are masked.
        """
        target = Path(target).expanduser()
        path = lock_path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the folder {path.parent} ({exc.strerror or exc}): choose another "
                             "path") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": mask(command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))}
        for _ in range(10):  # another process may remove the file between our open and our lock: try again
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UsageError(f"cannot create the lock file {path} ({exc.strerror or exc}): make the folder "
                                 "writable or choose another path") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = cls._read(fd)
                os.close(fd)
                raise LockedError(cls._message(target, holder, fix)) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                holder = cls._read(fd)  # no flock on this file system: trust a pid that is still running here
                if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) \
                        and holder["pid"] != me["pid"] and _alive(holder["pid"]):
                    os.close(fd)
                    raise LockedError(cls._message(target, holder, fix)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed it on release after our open: lock the new file instead
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode("utf-8", "replace"), 0)
            _HELD.add(fd)
            return cls(target, path, fd)
        raise LockedError(f"{target} is being locked and unlocked by other runs: {fix}")

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = os.pread(fd, 65536, 0)
            holder = json.loads(data.decode("utf-8", "replace")) if data.strip() else {}
        except (OSError, ValueError):
            holder = {}
        return holder if isinstance(holder, dict) else {}

    @staticmethod
    def _message(target: Path, holder: dict[str, Any], fix: str) -> str:
        if not holder:
            return f"{target} is being written by another run: {fix}"
        gone = ""
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
            gone = (f" (pid {pid} has ended but a process it started still holds the lock: stop that process, or "
                    f"delete {lock_path(target)})")
        return f"{target} is being written by another run ({_describe(holder)}){gone}: {fix}"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and unlock (removing first, while still holding the lock, so that no other run
        locks a file that is about to disappear). Idempotent."""
        if self._fd is None or os.getpid() != self._pid:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        _HELD.discard(self._fd)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a writer dropped without close(): do not keep the output locked
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
