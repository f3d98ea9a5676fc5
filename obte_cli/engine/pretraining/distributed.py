"""Process groups and model wrapping for `torchrun --no-python obte pretrain ...` (kept out of the model).

One process: nothing to set up. Under torchrun (``WORLD_SIZE`` > 1 in the environment): one process per
device, backend ``nccl`` on CUDA and ``gloo`` on CPU, rendezvous from torchrun's environment (so
multi-node runs need nothing else). Wrapping:

* DDP (default): every rank holds the whole model; gradients are averaged across ranks.
* FSDP2 (``fsdp=True``): ``fully_shard`` on every transformer block and on the root, so parameters,
  gradients and optimizer state are sharded across ranks; gradients are averaged as with DDP.

Gradient accumulation skips the gradient all-reduce on all but the last micro-batch of a step
(:func:`gradient_sync`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from obte_cli.engine.core.errors import InputError


@dataclass
class DistributedContext:
    """Where this process stands among its peers. Variables holding one are named ``processes``
    (``context`` is a token count everywhere in obte)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join torchrun's process group if launched by it; pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=30),
            device_id=device if device.type == "cuda" else None,
        )
    return DistributedContext(rank, world_size, local_rank, device)


def shutdown(processes: DistributedContext) -> None:
    if processes.active and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, blocks: nn.ModuleList, processes: DistributedContext, fsdp: bool) -> nn.Module:
    """DDP or FSDP2 around ``module`` (whose forward returns the loss terms); unchanged for one process."""
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        if not processes.active:
            raise InputError(
                "--fsdp shards over several processes: launch with torchrun --nproc-per-node N (or drop --fsdp)"
            )
        for block in blocks:
            fully_shard(block)
        return fully_shard(module)
    if not processes.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [processes.device.index] if processes.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


@contextlib.contextmanager
def gradient_sync(module: nn.Module, enabled: bool):
    """Skip the cross-rank gradient reduction inside (micro-batches before a step's last)."""
    if enabled:
        yield
        return
    if hasattr(module, "no_sync"):  # DDP
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):  # FSDP2
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield


def all_reduce_sum(values: torch.Tensor, processes: DistributedContext) -> torch.Tensor:
    """Sum of ``values`` over processes, returned on the device it came from (NCCL reduces only
    GPU tensors, so CPU bookkeeping tensors travel through ``processes.device``)."""
    if processes.active:
        home = values.device
        values = values.to(processes.device, copy=True)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values = values.to(home)
    return values


def barrier(processes: DistributedContext) -> None:
    if processes.active:
        dist.barrier()
