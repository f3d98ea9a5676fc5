"""Output directories that appear whole or not at all.

A command that fills a directory (a model, a CV run, token files, a tokenizer) builds it in a hidden
sibling, ``.NAME.partial-XXXX``, and moves it into place only when the work succeeded. An existing
directory at that path (replaced with ``--force``) is swapped out at that moment and only then removed:
a failed or interrupted run leaves the previous result untouched and removes only what it wrote itself.
The output may not be, or contain, one of the run's inputs (``--out`` equal to the backbone would
otherwise replace the model being fine-tuned).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from obte_cli.engine.core.errors import InputError


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
    os.rename(new, target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_directory(out: str | Path, inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Yield an empty staging directory beside ``out``; on success it becomes ``out`` (replacing what was
    there), on any exception (Ctrl-C included) it is removed and ``out`` is left as it was."""
    out = Path(out)
    refuse_input_as_output(out, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; the result should look like any directory
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_directory(staging, out)
