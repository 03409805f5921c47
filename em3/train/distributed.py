"""Data-parallel training in several processes (DDP), started by ``torchrun``: gloo on CPU, NCCL on GPUs.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` for every process it starts; ``process_group`` joins
them and ``current`` tells the trainer what its process does:

- every rank shuffles the epoch the same way (the order is a function of seed and epoch) and trains on its own
  shard of it; all shards have the same length, so all ranks take the same steps. The effective batch is
  ``train.batch_size`` × the number of processes;
- DDP averages the gradients, so the replicas keep identical weights; dropout draws differ per rank;
- validation predictions are split over the ranks and gathered, so every rank sees the same metrics and takes the
  same early-stopping decision;
- rank 0 alone logs, shows progress, and writes checkpoints, ``model/`` and ``metrics/``.

With one process (no ``torchrun``, or ``--nproc_per_node 1``) all of this is a no-op.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from em3.config import ConfigError


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: global rank, rank on its node, number of processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's rows of an epoch's ``order``: every ``world_size``-th row from ``rank`` on, the order first
        padded with its own first rows to a multiple of ``world_size`` (as DistributedSampler does), so every rank
        gets ``shard_rows(len(order))`` rows. Batch k of the shards together is rows k·B·W … (k+1)·B·W of ``order``."""
        if self.world_size == 1:
            return order
        padded = order[torch.arange(self.shard_rows(len(order)) * self.world_size) % len(order)]
        return padded[self.rank :: self.world_size]

    def shard_rows(self, n_rows: int) -> int:
        return math.ceil(n_rows / self.world_size)

    def device(self, device: torch.device) -> torch.device:
        """The GPU of this rank (``LOCAL_RANK``) when training on CUDA in several processes, else ``device``."""
        if device.type == "cuda" and self.world_size > 1:
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train with: ``model`` in DistributedDataParallel when there are several processes.

        Every parameter is used in every step of every variant (checked in tests/train/test_ddp.py), so DDP does
        not search for unused ones. Buffers are synchronised once, not on every forward: they are caches of content
        embeddings, which every rank refreshes at the same steps from its (identical) weights."""
        if self.world_size == 1:
            return model
        device = next(model.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)

    def seed_rank(self, seed: int) -> None:
        """Give each rank its own random stream (dropout) once the shared initial weights are made."""
        if self.world_size > 1:
            torch.manual_seed(seed * 100_003 + self.rank)

    def check_world_size(self, loop: dict) -> None:
        """A checkpoint written mid-epoch resumes only with as many processes as wrote it (the shards depend on
        it); record the world size in the loop state."""
        written_by = loop.get("world_size", 1)
        if loop["batch"] and written_by != self.world_size:
            raise ConfigError(
                f"the checkpoint was written mid-epoch by {written_by} process(es); resume it with "
                f"--nproc_per_node {written_by} (now {self.world_size}), or from the end of an epoch"
            )
        loop["world_size"] = self.world_size

    def gather_rows(self, predict_rows: Callable[[slice], np.ndarray], n_rows: int) -> np.ndarray:
        """``predict_rows(rows)`` (one float per row of the slice ``rows``) over ``n_rows`` rows: each rank predicts
        a contiguous share, and every rank gets all values back in row order."""
        if self.world_size == 1:
            return predict_rows(slice(0, n_rows))
        per_rank = self.shard_rows(n_rows)
        start, end = min(self.rank * per_rank, n_rows), min((self.rank + 1) * per_rank, n_rows)
        comm_device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        mine = torch.zeros(per_rank, dtype=torch.float32, device=comm_device)
        mine[: end - start] = torch.from_numpy(predict_rows(slice(start, end))).to(comm_device)
        parts = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(parts, mine)
        return torch.cat(parts)[:n_rows].cpu().numpy()


SINGLE_PROCESS = Distributed()


def current() -> Distributed:
    """The process group this process belongs to (one process when none was joined)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE_PROCESS
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


def backend_for(device: str) -> str:
    """NCCL when training will run on CUDA (``train.device`` cuda, or auto with a GPU), else gloo."""
    return "nccl" if device != "cpu" and torch.cuda.is_available() else "gloo"


@contextmanager
def process_group(device: str) -> Iterator[Distributed]:
    """Join the process group ``torchrun`` set up (``WORLD_SIZE`` > 1) for the duration of the block; one process
    needs none. ``device`` is ``train.device``, which picks the backend."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or dist.is_initialized():
        yield current()
        return
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        yield current()
    finally:
        dist.destroy_process_group()
