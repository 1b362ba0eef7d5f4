"""Several training processes as one (``torchrun``): the process group, who does what, and the few collectives
training needs besides DistributedDataParallel's own.

``torchrun --nproc_per_node=N -m tiny_diffusion train ...`` starts N copies of ``train`` with RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. Each joins one process group (gloo on CPUs, NCCL on CUDA GPUs, one GPU
per process) and trains a replica of the model wrapped in DistributedDataParallel, which averages the gradients of
every step across the processes. How the work is shared:

- ``--train-batch-size`` is the global batch; each process takes an equal, distinct share of its rows (``shard``).
- Every process draws the same permutation, noise, timesteps and label drops from the same generator, for the whole
  global batch, and uses its own rows of them. So N processes compute what one process computes with the same global
  batch (up to the order of float sums), every process holds the same generator state, and a checkpoint resumes on
  any number of processes.
- Rank 0 alone takes the run's lock, writes the run directory and its checkpoints, draws the snapshots and the final
  samples and prints; a check it makes there that fails (``on_main``) stops every process with its message.
- A failed or killed process ends the others: gloo reports a closed connection at once, and every collective has a
  timeout (``TIMEOUT``) so that none waits forever.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UsageError

__all__ = [
    "Cluster",
    "SINGLE",
    "TIMEOUT",
    "ReplicasDiffer",
    "world_size",
    "is_main_process",
    "joined",
    "resume_command",
]

# How long a process waits in a collective for the others (rank 0 drawing the final samples while the others wait
# at the last barrier is the longest wait of a healthy run) before it gives up with an error.
TIMEOUT = timedelta(minutes=30)
_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
T = TypeVar("T")


class ReplicasDiffer(RuntimeError):
    """The processes' copies of the training state are not the same (a bug: they must never differ)."""


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"the environment variable {name} must be an integer, got {text!r}") from None


def world_size() -> int:
    """How many processes train together: WORLD_SIZE as torchrun sets it, 1 without torchrun."""
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise UsageError(f"the environment variable WORLD_SIZE must be at least 1, got {world}")
    return world


def is_main_process() -> bool:
    """Whether this is rank 0 (or the only process): the one that prints and writes."""
    try:
        return _env_int("RANK", 0) == 0
    except UsageError:  # a malformed RANK: reported where it is used
        return True


def resume_command(run_dir: object) -> str:
    """The command that carries on ``run_dir`` with as many processes per machine as this one has."""
    processes = _env_int("LOCAL_WORLD_SIZE", world_size())
    if world_size() == 1:
        return f"tiny-diffusion train --resume {run_dir}"
    return f"torchrun --nproc_per_node={processes} -m tiny_diffusion train --resume {run_dir}"


@dataclass(frozen=True)
class Cluster:
    """This process's place among the processes that train together: rank ``rank`` of ``world_size``, computing on
    ``device``. With one process every method is a plain pass-through, and nothing else is run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, batch: int) -> slice:
        """This process's rows of a global batch of ``batch`` rows (all of them with one process)."""
        size = batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` ready to be replicated: on GPUs its BatchNorm layers normalise over the global batch
        (SyncBatchNorm, which has no CPU kernel: on CPUs each process normalises over its own rows)."""
        if self.distributed and self.device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """What a training step calls: ``model`` itself, or its DistributedDataParallel replica (which also
        broadcasts rank 0's buffers before each forward pass; ``average_buffers`` has made them the same already)."""
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a number over the processes (a step's loss: each process has its rows' mean)."""
        if not self.distributed:
            return value
        total = value.detach().reshape(1).clone()
        dist.all_reduce(total)
        return total[0] / self.world_size

    def any(self, *flags: int) -> tuple[int, ...]:
        """The largest of each flag over the processes, so that all decide alike (stop, save a checkpoint)."""
        if not self.distributed:
            return flags
        values = torch.tensor(flags, dtype=torch.int64, device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(values.tolist())

    def average_buffers(self, module: nn.Module) -> None:
        """Replace each floating buffer (BatchNorm's running statistics) by its mean over the processes. Each process
        updated them with its own rows; the mean of the running means is the running mean of the global batch."""
        buffers = [b for b in module.buffers() if b.is_floating_point()]
        if not self.distributed or not buffers:
            return
        flat = torch.cat([b.reshape(-1) for b in buffers])  # one collective for all of them
        dist.all_reduce(flat)
        flat /= self.world_size
        for buffer, value in zip(buffers, flat.split([b.numel() for b in buffers])):
            buffer.copy_(value.view_as(buffer))

    def barrier(self) -> None:
        """Wait until every process is here."""
        if self.distributed:
            dist.barrier()

    def broadcast_bytes(self, data: bytes) -> bytes:
        """Rank 0's ``data``, on every process (the others' ``data`` is ignored)."""
        if not self.distributed:
            return data
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(size, src=0)
        if not size:
            return b""
        buffer = torch.empty(int(size), dtype=torch.uint8, device=self.device)
        if self.is_main:
            buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buffer, src=0)
        return bytes(buffer.cpu().numpy())

    def on_main(self, work: Callable[[], T]) -> T | None:
        """Run ``work`` on rank 0 alone (its result there, None elsewhere). If it fails with a UsageError, every
        process raises that error, so all stop alike; any other failure of rank 0 stops the others too."""
        if not self.distributed:
            return work()
        result, message = None, b""
        if self.is_main:
            try:
                result = work()
            except UsageError as e:
                message = str(e).encode() or b" "
            except BaseException as e:
                message = f"rank 0 failed: {type(e).__name__}: {e}".encode()
                self.broadcast_bytes(message)
                raise
        message = self.broadcast_bytes(message)
        if message:
            raise UsageError(message.decode())
        return result

    def check_replicas(self, tensors: dict[str, torch.Tensor]) -> str:
        """The sha256 of ``tensors`` (the training state's, by name), after checking that every process holds the
        same bits; ReplicasDiffer names the first process that does not."""
        digest = hashlib.sha256()
        for name in sorted(tensors):
            digest.update(name.encode())
            digest.update(tensors[name].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        if self.distributed:
            mine = torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8).to(self.device)
            every = [torch.empty_like(mine) for _ in range(self.world_size)]
            dist.all_gather(every, mine)
            differing = [rank for rank, theirs in enumerate(every) if not torch.equal(theirs, every[0])]
            if differing:
                raise ReplicasDiffer(
                    f"the training state of process {differing[0]} differs from process 0's after "
                    "the same steps; the processes no longer train one model"
                )
        return digest.hexdigest()


SINGLE = Cluster()  # one process, on the CPU (a TrainState made without a cluster)


@contextmanager
def joined(device: torch.device) -> Iterator[Cluster]:
    """This process's Cluster for the block: under torchrun (WORLD_SIZE > 1) it joins the process group (gloo on
    a CPU, NCCL on CUDA GPUs, the GPU numbered LOCAL_RANK) and leaves it at the end; otherwise it is the only one."""
    world = world_size()
    if world == 1:
        yield Cluster(0, 1, device)
        return
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise UsageError(f"WORLD_SIZE={world} is set but {', '.join(missing)} not: start the processes with torchrun")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"process {rank} wants GPU {local_rank}, but {torch.cuda.device_count()} are visible: "
                "start at most one process per GPU"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UsageError(
            f"training with several processes runs on CPUs (gloo) or CUDA GPUs (NCCL), not on "
            f"{device.type}; pass --device cpu"
        )
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    try:
        yield Cluster(rank, world, device)
    finally:
        dist.destroy_process_group()
