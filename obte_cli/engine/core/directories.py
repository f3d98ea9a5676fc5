"""Output directories that a command fills file by file (`obte prep -o`, `scan-jaspar --saturation`, the
bench reports), as opposed to the staged directories of :mod:`obte_cli.engine.core.outputs` that appear whole.

They are made before any work, so a path that is a file, or that cannot be created, is one line at the
start of a run rather than a traceback at its end.
"""

from __future__ import annotations

from pathlib import Path

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import cannot_write


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
