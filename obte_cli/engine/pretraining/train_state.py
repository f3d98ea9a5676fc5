"""Pretraining checkpoints: everything needed to continue a run exactly.

A checkpoint is a directory ``checkpoints/step-NNNNNNN/`` holding

* the model and optimizer state, written by ``torch.distributed.checkpoint`` (DCP): each rank writes
  its own shards in parallel (FSDP2) or rank 0 writes all (DDP); loading re-shards as needed. DCP
  stores tensors in its own format, and :mod:`obte_cli.engine.pretraining.safe_checkpoint` reads its
  index and values with allow-listing unpicklers, so a crafted checkpoint cannot run code;
* ``trainer.json``: step, tokens seen, the LR scheduler's state and the run's settings — the data
  position *is* the step (:mod:`obte_cli.engine.pretraining.batches` makes batches a function of the step);
* ``rng-rank-R.json``: each rank's torch RNG state (only dropout draws from it).

Writes go to a temporary directory that rank 0 renames into place after every rank has finished, then
``checkpoints/latest`` is replaced atomically: a crash at any moment leaves the previous checkpoint
intact and ``latest`` pointing at a complete one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.core.inputs import refuse_special_file
from obte_cli.engine.core.outputs import WRITE_ERRNOS, cannot_write
from obte_cli.engine.pretraining.distributed import DistributedContext, barrier
from obte_cli.engine.pretraining.safe_checkpoint import SafeCheckpointReader, SafeLoadPlanner, checkpoint_failure

LATEST = "latest"


@contextlib.contextmanager
def _single_process_quiet():
    """DCP warns that it 'assumes a single process' when no process group exists: that is intended.
    It also logs tracebacks on the root logger while it falls back between index files; the error we
    raise afterwards says what went wrong in one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _write_failures(final: Path, staging: Path, processes: DistributedContext):
    """A checkpoint write that fails for want of space (full disk, quota, file size limit, I/O error) is one
    line naming the checkpoint, its partial directory removed; DCP hands the OSError over wrapped in a
    CheckpointException (a BaseException), which would otherwise end the run in a traceback."""
    try:
        yield
    except (OSError, CheckpointException) as exc:
        error = exc if isinstance(exc, OSError) else _first_os_error(exc)
        if error is None or error.errno not in WRITE_ERRNOS:
            raise
        if processes.is_main:
            shutil.rmtree(staging, ignore_errors=True)
        raise cannot_write(final, error) from None


def _first_os_error(exc: CheckpointException) -> OSError | None:
    """The OSError a rank failed with, from DCP's ``failures`` ({rank: exception or (exception, traceback)})."""
    for failure in getattr(exc, "failures", {}).values():
        error = failure[0] if isinstance(failure, tuple) else failure
        if isinstance(error, OSError):
            return error
    return None


def save_checkpoint(
    root: Path,
    step: int,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict,
    processes: DistributedContext,
    keep: int = 2,
) -> Path:
    root = Path(root)
    final = root / checkpoint_name(step)
    staging = root / f".{checkpoint_name(step)}.partial"
    if processes.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    barrier(processes)
    model_state, optim_state = get_state_dict(module, optimizer)
    with _write_failures(final, staging, processes):
        with _single_process_quiet():
            dcp.save(
                {"model": model_state, "optim": optim_state},
                checkpoint_id=str(staging),
                no_dist=not dist.is_initialized(),
            )
        _write_json(staging / f"rng-rank-{processes.rank}.json", {"torch": torch.get_rng_state().tolist()})
    barrier(processes)
    if processes.is_main:
        with _write_failures(final, staging, processes):
            _write_json(staging / "trainer.json", {**trainer_state, "step": step, "world_size": processes.world_size})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        (root / f".{LATEST}.tmp").write_text(final.name + "\n")
        os.replace(root / f".{LATEST}.tmp", root / LATEST)
        for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier(processes)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    return path if (path / "trainer.json").is_file() else None


def load_checkpoint(
    path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, processes: DistributedContext
) -> dict:
    """Restore model, optimizer and this rank's RNG in place; returns ``trainer.json``."""
    path = Path(path)
    model_state, optim_state = get_state_dict(module, optimizer)
    state = {"model": model_state, "optim": optim_state}
    with _single_process_quiet():
        reader, planner = SafeCheckpointReader(path), SafeLoadPlanner()
        try:
            dcp.load(state, storage_reader=reader, planner=planner, no_dist=not dist.is_initialized())
        except (Exception, CheckpointException) as exc:  # DCP wraps failures in a BaseException subclass
            raise checkpoint_failure(path, exc, reader, planner) from None
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng_file = path / f"rng-rank-{processes.rank}.json"
    if rng_file.is_file():
        rng = read_checkpoint_json(rng_file).get("torch")
        try:
            torch.set_rng_state(torch.tensor(rng, dtype=torch.uint8))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ObteError(f"{rng_file}: not a saved random-number state") from exc
    return read_trainer_state(path)


def read_trainer_state(path: Path) -> dict:
    """The checkpoint ``path``'s ``trainer.json``, its fields checked: ``step`` and ``tokens`` non-negative
    integers, ``scheduler`` and ``settings`` objects; anything else is an ObteError naming the file and field."""
    path = Path(path)
    trainer = read_checkpoint_json(path / "trainer.json")
    kinds = {"step": int, "tokens": int, "scheduler": dict, "settings": dict}
    for key, kind in kinds.items():
        if not isinstance(trainer.get(key), kind) or isinstance(trainer.get(key), bool):
            raise ObteError(f"{path / 'trainer.json'}: {key!r} is missing or not a {kind.__name__}")
    for key in ("step", "tokens"):
        if trainer[key] < 0:
            raise ObteError(f"{path / 'trainer.json'}: {key!r} must not be negative (got {trainer[key]})")
    return trainer


def read_checkpoint_json(path: Path) -> dict:
    """A checkpoint's JSON object (``trainer.json``, RNG state); unreadable or malformed is an ObteError."""
    refuse_special_file(path, ObteError)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON, a number of > 4300 digits
        raise ObteError(f"{path}: unreadable checkpoint file ({(str(exc).splitlines() or ['?'])[0][:200]})") from exc
    if not isinstance(data, dict):
        raise ObteError(f"{path}: not a checkpoint file (a JSON object was expected)")
    return data
