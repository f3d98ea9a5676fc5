"""Output directories, prepared before any work so that a mistake is one line at the start of a run rather
than a traceback (or lost work) at its end.

* Directories that a command fills file by file (`obte prep -o`, `pretrain -o`, `scan-jaspar --saturation`,
  the bench reports): :func:`output_directory` makes them; :func:`locked_output_directory` also locks
  one for the length of the run (prep, pretrain), so that two runs never write into one directory at once.
* Directories that appear whole (a model, a fine-tuning run, a token directory: the staged directories of
  :mod:`obte_cli.engine.core.outputs`): :func:`claim_output` checks, before the work, that the run may
  write there — not an input, not the current directory, not an existing directory unless ``--force``
  and obte's own — and locks the output until the run ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.locks import OutputLock, lock_output
from obte_cli.engine.core.outputs import (
    cannot_write,
    check_replaceable,
    refuse_current_directory,
    refuse_input_as_output,
)


def output_directory(path: str | Path, option: str = "--out") -> Path:
    """Create ``path`` (with its parents) unless it is a directory already; returns it. A file there, or a
    file where a parent should be, is an :class:`InputError`; no permission or a full disk, a write error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: not a directory ({option} names a directory to write files into)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent is a file
        raise InputError(f"{path}: cannot be a directory: a parent of it is a file ({option})") from None
    except OSError as exc:
        raise cannot_write(path, exc) from None
    return path


def locked_output_directory(path: str | Path, option: str = "--out") -> OutputLock:
    """:func:`output_directory`, locked for this run (a ``.obte-lock`` file inside it; see
    :mod:`obte_cli.engine.core.locks`): refused in one line while another run writes there. Release the
    returned lock when the run ends (it is a context manager)."""
    return lock_output(output_directory(path, option), inside=True, option=option)


def claim_output(
    path: str | Path, force: bool, inputs: Iterable[str | Path | None] = (), option: str = "--out"
) -> OutputLock:
    """Before a run whose output directory ``path`` appears whole at its end: refuse, in one line, an output
    that is (or contains) an input or the current directory, an existing one without ``force``, and with
    ``force`` one that obte did not write (:func:`~obte_cli.engine.core.outputs.check_replaceable`). Then
    lock it (beside it: ``.NAME.obte-lock``) until the returned lock is released, so that a second run
    into the same place is refused rather than silently replacing the first one's result."""
    path = Path(path)
    refuse_current_directory(path, option)
    refuse_input_as_output(path, [p for p in inputs if p is not None])
    try:  # the lock file goes beside the output
        path.absolute().parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{path}: cannot be a directory: a parent of it is a file ({option})") from None
    except OSError as exc:
        raise cannot_write(path, exc) from None
    lock = lock_output(path, inside=False, option=option)
    try:  # checked under the lock: no other obte run can create or replace it from now on
        if path.exists() or path.is_symlink():
            check_replaceable(path, option)
            if not force:
                raise InputError(f"{path}: already exists (use --force to replace it)")
    except BaseException:
        lock.release()
        raise
    return lock
