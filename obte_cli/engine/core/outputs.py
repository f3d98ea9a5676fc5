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
otherwise replace the model being fine-tuned), nor the current directory; and only a directory obte
recognises as its own output (:func:`obte_output_kind`: a model, an ensemble, a run, a corpus, a token
or tokenizer directory, a bench run) or an empty one is ever replaced: anything else is refused, naming
a file in it (:func:`check_replaceable`).

Partial files and staging directories are held (:func:`obte_cli.engine.core.locks.hold_partial`) while
they are written; those of the same target that nobody holds any more (a run killed with SIGKILL) are
removed when the next run writes that target. An output file is never one of the inputs of its run:
:func:`refuse_same_file` compares device and inode, through symlinks and hard links.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from obte_cli.engine.core.errors import InputError, ObteError
from obte_cli.engine.core.locks import hold_partial, is_lock_file, partial_pattern, remove_stale_partials

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
        self._held: int | None = None  # a second descriptor that keeps the partial locked until it is renamed
        try:
            if self.in_place:
                self.handle = _open(self.target, binary)
            else:
                prefix = partial_prefix(self.target)
                remove_stale_partials(self.target.parent, partial_pattern([prefix]))
                while True:
                    fd, self._partial = tempfile.mkstemp(prefix=prefix, dir=self.target.parent)
                    if hold_partial(fd):
                        break
                    os.close(fd)  # another run took it for a stale one in the instant before we held it
                self._held = os.dup(fd)
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
                self._unhold()
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
        self._unhold()

    def _unhold(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None


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
    """InputError when ``out`` is one of ``inputs`` or a directory that contains one. (``os.path.realpath``,
    not ``Path.resolve``: a symlink loop among the inputs is for their reader to report, not a traceback here.)"""
    target = Path(os.path.realpath(out))
    for source in inputs:
        if source is None:
            continue
        path = Path(os.path.realpath(source))
        if path == target or target in path.parents:
            raise InputError(f"{out}: --out would replace the input {source}; choose another output directory")


def refuse_current_directory(out: str | Path, option: str = "--out") -> None:
    """InputError when the directory ``out`` is the current directory or contains it (``-o .``): it would be
    moved away from under the shell that runs obte."""
    try:
        here = Path.cwd().resolve()
    except OSError:  # the current directory was removed: nothing to protect
        return
    target = Path(os.path.realpath(out))
    if target == here or target in here.parents:
        what = "the current directory" if target == here else "a directory above the current one"
        raise InputError(f"{out}: {option} is {what}; name a new directory for the output")


def refuse_same_file(outputs: Iterable[tuple[str, str | Path | None]], inputs: Iterable[str | Path | None]) -> None:
    """InputError, before any work, when an output file is one of the input files: the same file (device and
    inode), whatever the names, symlinks or hard links. ``outputs`` are (option, path) pairs; ``-``, None and
    outputs that do not exist yet are skipped, and so are devices and FIFOs (``-o /dev/stdout`` with input
    ``-`` on one terminal is fine). An input ``-`` is standard input, which may be redirected from the output;
    an input directory (a model) stands for the files in it."""
    sources = []
    for source in inputs:
        if source is None:
            continue
        try:
            if str(source) == "-":
                sources.append(("standard input", os.fstat(sys.stdin.fileno())))
                continue
            info = os.stat(source)
            sources.append((str(source), info))
            if stat.S_ISDIR(info.st_mode):  # a model directory: the files in it are read
                with os.scandir(source) as entries:
                    sources += [(e.path, e.stat()) for e in entries if e.is_file()]
        except (OSError, ValueError, AttributeError):  # a missing input is reported by its reader
            continue
    for option, out in outputs:
        if out is None or str(out) == "-":
            continue
        try:
            info = os.stat(out)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        for name, source in sources:
            if os.path.samestat(info, source):
                which = "one of the inputs" if name == str(out) else f"the same file as the input {name}"
                raise InputError(f"{out}: {option} is {which}, which it would replace; write to another file")


# What obte writes into a directory that a later run may replace with --force: a file, the "format" its
# JSON declares (or the first columns of its TSV header) and what the directory then is. The names are the
# engine's (model.directory, affinity.ensemble, pretraining.token_files / prep / debian_corpus, bench,
# model.hf_export);
# tests/engine/core/test_outputs.py checks that they agree.
OWN_OUTPUTS = (
    ("config.json", "obte-model", "a model directory"),
    ("ensemble.json", "obte-ensemble", "a ΔG ensemble"),
    ("tokens.json", "obte-tokens", "a token directory"),
    ("manifest.json", "obte-prep", "a prep corpus"),
    ("corpus-manifest.json", "obte-debian-corpus", "a Debian corpus"),
    ("tokenizer.json", "tokenizer", "a tokenizer directory"),
    ("obte-export.json", "obte-hf-export", "a Hugging Face export"),
    ("model/config.json", "obte-model", "a fine-tuning or pretraining run"),
    ("checkpoints/latest", "checkpoint", "a pretraining run"),
    ("obte-cv/ensemble.json", "obte-ensemble", "a ProNAB bench run"),
    ("bench.tsv", "method\tfolds\ttest_rows", "a ProNAB bench run"),
    ("tasks.tsv", "suite\ttask\tmetric", "a tasks bench run"),
)
_MARKER_BYTES = 1 << 20  # a marker file larger than this is not one obte wrote
_TOKENIZER_KINDS = frozenset({"residue", "sentencepiece"})
# obte's hidden partial and lock names (files of killed runs): alone, they do not make a directory someone else's
_OWN_HIDDEN = re.compile(r"\..+\.(?:obte-partial-\w+|partial-\w+|old-\d+)")


def _marker(path: Path, expected: str) -> bool:
    """Is ``path`` a regular file (not through a symlink) with the content obte writes there?"""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MARKER_BYTES:
            return False
        with open(path, "rb") as handle:
            data = handle.read(_MARKER_BYTES)
    except OSError:
        return False
    text = data.decode("utf-8", errors="replace")
    if expected == "checkpoint":  # checkpoints/latest names a step directory
        return re.fullmatch(r"step-\d+\n?", text) is not None
    if "\t" in expected:
        return text.startswith(expected)
    try:
        content = json.loads(text)
    except ValueError:
        return False
    if not isinstance(content, dict):
        return False
    if expected == "tokenizer":
        return content.get("kind") in _TOKENIZER_KINDS
    return content.get("format") == expected


def obte_output_kind(directory: str | Path) -> str | None:
    """What obte output the directory is (``"a model directory"``...), or None if it is none that obte
    recognises. A prep corpus made in parts has ``manifest-I-of-N.json`` instead of ``manifest.json``."""
    directory = Path(directory)
    for name, expected, kind in OWN_OUTPUTS:
        if _marker(directory / name, expected):
            return kind
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if re.fullmatch(r"manifest-\d+-of-\d+\.json", entry.name) and _marker(Path(entry.path), "obte-prep"):
                return "a prep corpus"
    return None


def _foreign_entries(directory: Path) -> list[str]:
    """The entries of ``directory`` other than obte's own hidden partial and lock files, sorted."""
    return sorted(name for name in os.listdir(directory) if not (_OWN_HIDDEN.fullmatch(name) or is_lock_file(name)))


def check_replaceable(path: str | Path, option: str = "--out") -> None:
    """InputError unless the existing ``path`` may be replaced as a whole: an empty directory or one that
    :func:`obte_output_kind` recognises. A file, or a directory of anything else, is refused in one line that
    names a file in it: ``--force`` replaces what obte wrote, never what it did not."""
    path = Path(path)
    refuse_current_directory(path, option)
    what = "--force replaces only a directory obte wrote (a model, an ensemble, a run, a corpus or token directory)"
    try:
        is_directory = path.is_dir()
        entries = _foreign_entries(path) if is_directory else []
    except OSError as exc:
        raise InputError(f"{path}: cannot look into it ({exc.strerror}); choose another {option}") from None
    if not is_directory:
        if path.exists() or path.is_symlink():
            raise InputError(f"{path}: is a file, not an obte output directory; {what}: choose another {option}")
        return
    if not entries or obte_output_kind(path) is not None:
        return
    shown = [name for name in entries if (path / name).is_file()] or entries
    raise InputError(
        f"{path}: not an obte output (it holds {shown[0]}); {what}: choose another {option} or move it yourself"
    )


def replace_directory(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is swapped out first, then removed. Only an
    output that :func:`check_replaceable` allows is replaced."""
    old = None
    held = None
    if target.exists() or target.is_symlink():
        check_replaceable(target)
        with contextlib.suppress(OSError):  # held while it is removed: not a stale partial for another run
            held = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            hold_partial(held)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    try:
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
    finally:
        if held is not None:
            os.close(held)


@contextlib.contextmanager
def staged_directory(out: str | Path, inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Yield an empty staging directory beside ``out``; on success it becomes ``out`` (replacing what was
    there, if :func:`check_replaceable` allows), on any exception (Ctrl-C included) it is removed and
    ``out`` is left as it was. Staging directories of ``out`` left by killed runs are removed first."""
    shown = out
    out = Path(os.path.abspath(out))  # `-o .` has no name of its own
    refuse_input_as_output(out, inputs)
    if out.exists() or out.is_symlink():
        check_replaceable(shown)
    remove_stale_partials(out.parent, partial_pattern([f".{out.name}.partial-", f".{out.name}.old-"]))
    held = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        while True:
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
            held = os.open(staging, os.O_RDONLY | os.O_CLOEXEC)
            if hold_partial(held):
                break
            os.close(held)  # another run took it for a stale one in the instant before we held it
            held = None
    except OSError as exc:  # an unwritable parent, a parent that is a file
        if held is not None:
            os.close(held)
        raise cannot_write(shown, exc) from None
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; the result should look like any directory
        yield staging
        replace_directory(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise cannot_write(shown, exc) from None
        raise
    finally:
        os.close(held)
