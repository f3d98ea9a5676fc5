"""Progress of long work on stderr, for every command (a :data:`~obte_cli.engine.core.progress.ProgressFactory`).

On a terminal: a rich bar (count, rate, elapsed and remaining time), removed when the work is done; work
started inside other work gets its own line in the same display. Elsewhere (a log file, a batch job): a plain
``obte: LABEL: 312/1,000 sequences (31%), 25 s, about 55 s left`` line every ``OBTE_PROGRESS_INTERVAL``
seconds (default 10), and one last line when work that lasted longer than that is done. ``-q`` silences both.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator

from obte_cli.commands.common import log, stderr_console
from obte_cli.engine.core.progress import Advance, no_progress

INTERVAL_ENV = "OBTE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0

_live = None  # the rich Progress shown now (shared by nested work)
_live_users = 0


def progress_interval() -> float:
    """Seconds between plain progress lines: ``$OBTE_PROGRESS_INTERVAL`` if it is a positive number, else 10."""
    try:
        seconds = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_INTERVAL


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(label: str, done: float, total: float | None, unit: str, elapsed: float) -> str:
    """One plain progress line (without the ``obte:`` of the log)."""
    unit = f" {unit}" if unit else ""
    done = round(done, 6)  # fractions of a record (1/3 + 1/3 + 1/3) add up to a whole one
    if total:
        line = f"{label}: {math.floor(done):,}/{math.ceil(total):,}{unit} ({100 * min(done / total, 1):.0f}%), "
        line += duration(elapsed)
        if 0 < done < total:
            line += f", about {duration(elapsed * (total - done) / done)} left"
        return line
    return f"{label}: {math.floor(done):,}{unit}, {duration(elapsed)}"


@contextlib.contextmanager
def work_progress(total: float | None, label: str, unit: str = "") -> Iterator[Advance]:
    """Yield ``advance(n=1)``: ``n`` more of ``total`` units of ``label``'s work are done (see module docstring)."""
    if not log.isEnabledFor(logging.INFO):
        with no_progress() as advance:
            yield advance
        return
    if stderr_console.is_terminal:
        with _rich_task(total, label, unit) as advance:
            yield advance
        return
    with _plain_lines(total, label, unit, progress_interval()) as advance:
        yield advance


@contextlib.contextmanager
def _rich_task(total: float | None, label: str, unit: str) -> Iterator[Advance]:
    global _live, _live_users
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if _live is None:
        _live = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr_console,
            transient=True,
        )
        _live.start()
    _live_users += 1
    progress = _live
    done = 0.0

    def count() -> str:
        shown = f"{math.floor(round(done, 6)):,}" + (f"/{math.ceil(total):,}" if total else "")
        return f"{shown} {unit}".rstrip()

    task = progress.add_task(label, total=total, count=count())

    def advance(n: float = 1) -> None:
        nonlocal done
        done += n
        progress.update(task, completed=done, count=count())

    try:
        yield advance
    finally:
        progress.remove_task(task)
        _live_users -= 1
        if _live_users == 0:
            _live = None
            progress.stop()


@contextlib.contextmanager
def _plain_lines(total: float | None, label: str, unit: str, interval: float) -> Iterator[Advance]:
    started = time.monotonic()
    done = 0.0
    stop = threading.Event()

    def advance(n: float = 1) -> None:
        nonlocal done
        done += n

    def every_interval() -> None:
        while not stop.wait(interval):
            log.info("%s", progress_line(label, done, total, unit, time.monotonic() - started))

    ticker = threading.Thread(target=every_interval, name=f"progress: {label}", daemon=True)
    ticker.start()
    try:
        yield advance
    finally:
        stop.set()
        ticker.join()
    elapsed = time.monotonic() - started
    if elapsed >= interval:  # work that showed progress says when it is done (a quick one stays quiet)
        log.info("%s", progress_line(label, done, total, unit, elapsed))
