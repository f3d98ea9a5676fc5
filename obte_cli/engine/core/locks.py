"""Who is writing where: an exclusive lock on an output for the length of a run, and the hidden partial
files and directories of outputs that no live process is writing any more.

Both rest on ``flock(2)``. The kernel drops a process's locks when it ends, however it ends (``kill -9``
included), so a lock or a partial left behind by a dead run is free again at once: no timeout, no guessing
from pids. The pid written into a lock file is only there to be named in the message.

* :func:`lock_output` takes the lock of an output: a file ``.NAME.obte-lock`` beside an output that is
  replaced as a whole (it moves in when the run ends, so it cannot hold its own lock), or ``.obte-lock``
  inside a directory that a run fills in place (a prep corpus, a pretraining run). While another process
  holds it, the run is refused in one line naming that process. The lock file is removed on release.
* A writer holds each of its partial files and staging directories with :func:`hold_partial` while it
  writes them; :func:`remove_stale_partials` removes those of a target that nobody holds.

On a file system without ``flock`` (some network mounts) runs go ahead unlocked and partials are left.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from obte_cli.engine.core.errors import InputError, ObteError

LOCK_NAME = ".obte-lock"  # inside a directory filled in place
LOCK_SUFFIX = ".obte-lock"  # .NAME.obte-lock beside an output replaced as a whole
# errors that mean "this file system cannot lock", not "someone holds it"
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


class OutputLock:
    """An exclusive lock on one output, held by this process until :meth:`release` (or its end).
    Taken again by the same process (a command that checks its output twice), it is counted, not refused."""

    _held: dict[Path, OutputLock] = {}  # the locks this process holds, by lock file

    def __init__(self, lock_file: Path, target: Path, option: str):
        self.lock_file = lock_file
        self.target = target
        self.option = option
        self._fd: int | None = None
        self._count = 0

    def acquire(self) -> OutputLock:
        held = OutputLock._held.get(self.lock_file)
        if held is not None:
            held._count += 1
            return held
        for _ in range(100):  # a holder that releases removes the file: lock the one that is there now
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"pid {holder}" if holder else f"lock file {self.lock_file}"
                raise InputError(
                    f"{self.target}: in use by another obte run ({who}); wait for it to end or choose another "
                    f"{self.option}"
                ) from None
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    os.close(fd)
                    raise ObteError(f"{self.lock_file}: cannot lock: {exc.strerror}") from None
                return self._hold(fd, write_pid=False)
            try:
                current = os.stat(self.lock_file)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                return self._hold(fd, write_pid=True)
            os.close(fd)
        raise ObteError(f"{self.lock_file}: cannot lock: it keeps being replaced")

    def _open(self) -> int:
        flags = os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                return os.open(self.lock_file, os.O_RDWR | os.O_CREAT | flags, 0o666)
            except PermissionError:  # a lock file another user made: reading is enough to lock it
                return os.open(self.lock_file, os.O_RDONLY | flags)
        except OSError as exc:
            raise ObteError(f"{self.target}: cannot lock it for this run ({self.lock_file}: {exc.strerror})") from None

    def _hold(self, fd: int, write_pid: bool) -> OutputLock:
        if write_pid:
            with contextlib.suppress(OSError):  # the pid is for messages only
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
        self._fd, self._count = fd, 1
        OutputLock._held[self.lock_file] = self
        return self

    def release(self) -> None:
        """Give the lock up (the last of this process's holds removes the lock file)."""
        if self._fd is None:
            return
        self._count -= 1
        if self._count > 0:
            return
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(self._fd), os.stat(self.lock_file)):
                os.unlink(self.lock_file)  # while still locked: a waiting process then makes a new one
        os.close(self._fd)
        self._fd = None
        OutputLock._held.pop(self.lock_file, None)

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return text
    return ""


def lock_output(target: str | Path, *, inside: bool, option: str = "--out") -> OutputLock:
    """Lock the output ``target`` for this run (see the module docstring): ``inside`` a directory that
    exists and is filled in place, else beside it. Refused with an :class:`InputError` while held."""
    target = Path(os.path.abspath(target))
    lock_file = target / LOCK_NAME if inside else target.with_name(f".{target.name}{LOCK_SUFFIX}")
    return OutputLock(lock_file, target, option).acquire()


def is_lock_file(name: str) -> bool:
    return name == LOCK_NAME or (name.startswith(".") and name.endswith(LOCK_SUFFIX))


# ---- partial files and directories ---------------------------------------------------------------------


def hold_partial(fd: int) -> bool:
    """Lock the partial file or directory open as ``fd`` for as long as it stays open; False if a cleaner
    removed it between its creation and now (the caller then makes another)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a cleaner holds it only for the moment it takes to remove it
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return True
        raise
    return os.fstat(fd).st_nlink > 0


def remove_stale_partials(directory: str | Path, pattern: str | re.Pattern) -> list[Path]:
    """Remove the entries of ``directory`` whose names match ``pattern`` (obte's own partial names, see
    the callers) and that no live process holds: a partial file or staging directory left by a run that
    was killed. Returns what was removed; anything that cannot be examined is left alone."""
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    removed = []
    try:
        entries = [entry for entry in os.scandir(directory) if regex.fullmatch(entry.name)]
    except OSError:
        return removed
    for entry in entries:
        if _remove_if_unheld(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


def _remove_if_unheld(path: Path) -> bool:
    try:
        info = os.lstat(path)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            return False  # obte makes only files and directories; a link or FIFO of that name is not ours
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live writer, or a file system that cannot tell
            return False
        if not os.path.samestat(os.fstat(fd), os.lstat(path)):
            return False
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def partial_pattern(prefixes: Iterable[str], tail: str = r".+") -> re.Pattern:
    """A pattern for names that start with one of ``prefixes`` (taken literally) followed by ``tail``."""
    return re.compile("(?:" + "|".join(re.escape(p) for p in prefixes) + ")" + tail)
