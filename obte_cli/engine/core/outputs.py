"""Outputs that appear whole or not at all: files and directories.

Files (tables, structures, plots, embeddings, manifests) go through :func:`atomic_file`: the data are
written to a hidden sibling, ``.NAME.obte-partial-XXXX`` (a run killed with SIGKILL leaves one that says
what it was), flushed, fsynced and closed with every error checked, given the umask's mode (or the mode of
the file it replaces) and only then renamed over ``NAME``. Any failure, Ctrl-C included, removes the
partial file and leaves a previous ``NAME`` untouched. A symlink is followed (its target is replaced, the
link kept); a path that exists but is not a regular file (a FIFO, a device, ``/dev/stdout``, a process
substitution) is opened and written in place, never renamed over. Write failures (a full disk, a missing
or unwritable directory, ``-o`` naming a directory) become one-line :class:`ObteError`\\ s.

A command that fills a directory (a model, a CV run, token files, a tokenizer) builds it in a hidden
sibling, ``.NAME.partial-XXXX``, and moves it into place only when the work succeeded. An existing
directory at that path (replaced with ``--force``) is swapped out at that moment and only then removed:
a failed or interrupted run leaves the previous result untouched and removes only what it wrote itself.
The output may not be, or contain, one of the run's inputs (``--out`` equal to the backbone would
otherwise replace the model being fine-tuned).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from obte_cli.engine.core.errors import InputError, ObteError

# errors of a write itself (as opposed to, say, a missing input file read in the same block)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
PARTIAL_MARK = ".obte-partial-"
_IN_PLACE_ROOTS = ("/dev/", "/proc/")  # /dev/stdout, /dev/fd/63 (process substitution), /proc/self/fd/1


def cannot_write(path: str | Path | None, exc: OSError) -> ObteError:
    """The one-line error for a failed write to ``path`` (None: standard output)."""
    reason = exc.strerror or str(exc)
    if path is None:
        return ObteError(f"cannot write to standard output: {reason}")
    return ObteError(f"{path}: cannot write: {reason}")


@contextlib.contextmanager
def write_errors(path: str | Path | None) -> Iterator[None]:
    """Turn a write failure (disk full, quota, I/O error) inside the block into :func:`cannot_write`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise cannot_write(path, exc) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode a new file gets under the current umask (``0o666 & ~umask``; 0644 with umask 022)."""
    return 0o666 & ~_umask()


def partial_prefix(target: Path) -> str:
    """Name prefix of the hidden files that become ``target``: ``.NAME.obte-partial-``."""
    return f".{target.name}{PARTIAL_MARK}"


def output_target(path: str | Path) -> tuple[Path, bool, int]:
    """Where an output named ``path`` is written: (file, in place?, mode for a new file).

    In place for an existing non-regular file (or one reached through /dev or /proc); otherwise the file
    a symlink points to, replaced atomically. Raises :class:`ObteError` for a directory, a missing parent
    directory or a read-only file."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:  # a parent that is a file, a symlink loop, no search permission
        raise cannot_write(path, exc) from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path}: is a directory")
        if not stat.S_ISREG(info.st_mode) or os.path.abspath(path).startswith(_IN_PLACE_ROOTS):
            return path, True, 0
        target = Path(os.path.realpath(path))
        if not os.access(target, os.W_OK):
            raise cannot_write(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
        return target, False, stat.S_IMODE(info.st_mode)
    target = Path(os.path.realpath(path))  # a dangling symlink names the file to create
    if not target.parent.is_dir():
        raise ObteError(f"{path}: directory {target.parent} does not exist")
    return target, False, new_file_mode()


def check_output(path: str | Path) -> None:
    """Raise now what writing ``path`` would raise later (a directory, a missing parent directory, a
    read-only file): for an output written after long work, or after another output."""
    output_target(path)


def _open(file: str | Path | int, binary: bool) -> IO:
    if binary:
        return open(file, "wb")  # noqa: SIM115 - the caller closes it
    return open(file, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - the caller closes it


def scratch_directory(path: str | Path) -> Path:
    """Where scratch data for the output ``path`` belong: beside the file it becomes (the same file system,
    often larger than the temp directory), or the temp directory for an output written in place."""
    target, in_place, _ = output_target(path)
    return Path(tempfile.gettempdir()) if in_place else target.parent


class AtomicFile:
    """An output file being written: :attr:`handle` takes the data, :meth:`commit` puts the file in
    place, :meth:`discard` drops it (the previous file stays). See the module docstring for the rules;
    :func:`atomic_file` is the usual way in."""

    def __init__(self, path: str | Path, binary: bool = False):
        self.path = Path(path)
        self.target, self.in_place, self._mode = output_target(self.path)
        self._partial: str | None = None
        try:
            if self.in_place:
                self.handle = _open(self.target, binary)
            else:
                fd, self._partial = tempfile.mkstemp(prefix=partial_prefix(self.target), dir=self.target.parent)
                self.handle = _open(fd, binary)
        except OSError as exc:  # an unwritable or read-only directory, a device that refuses writes
            raise cannot_write(self.path, exc) from None

    def commit(self) -> Path:
        """Flush, fsync, close and rename into place; every step is checked. Returns the file written."""
        try:
            self.handle.flush()
            if self._partial is not None:
                os.fsync(self.handle.fileno())
                os.fchmod(self.handle.fileno(), self._mode)
            self.handle.close()
            if self._partial is not None:
                os.replace(self._partial, self.target)
                self._partial = None
                _sync_directory(self.target.parent)
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):  # a FIFO's reader may leave,
                raise cannot_write(self.path, exc) from None  # as with `obte ... | head`
            raise
        return self.target

    def discard(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.handle.close()  # may try to flush what is buffered: that may fail, and does not matter
        if self._partial is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._partial)
            self._partial = None


def _sync_directory(directory: Path) -> None:
    """Make the rename durable; not every file system lets a directory be fsynced, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """Yield a handle whose data become ``path`` when the block ends without an exception; on any
    exception (Ctrl-C included) nothing is left behind and a previous ``path`` is untouched."""
    output = AtomicFile(path, binary)
    try:
        with write_errors(path):
            yield output.handle
    except BaseException:
        output.discard()
        raise
    output.commit()


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_file(path) as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_file(path, binary=True) as handle:
        handle.write(data)
    return Path(path)


def refuse_input_as_output(out: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """InputError when ``out`` is one of ``inputs`` or a directory that contains one."""
    target = Path(out).resolve()
    for source in inputs:
        if source is None:
            continue
        path = Path(source).resolve()
        if path == target or target in path.parents:
            raise InputError(f"{out}: --out would replace the input {source}; choose another output directory")


def replace_directory(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is swapped out first, then removed."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_directory(out: str | Path, inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Yield an empty staging directory beside ``out``; on success it becomes ``out`` (replacing what was
    there), on any exception (Ctrl-C included) it is removed and ``out`` is left as it was."""
    out = Path(out)
    refuse_input_as_output(out, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:  # an unwritable parent, a parent that is a file
        raise cannot_write(out, exc) from None
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; the result should look like any directory
        yield staging
        replace_directory(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise cannot_write(out, exc) from None
        raise
