"""Where the computation runs: device, threads, and data parallelism via torchrun.

One process on the CPU is the default. ``--device cuda`` (or ``auto`` with a GPU)
moves work to the GPU. Many processes come from PyTorch's own launcher,
``torchrun --nproc_per_node K -m aimeye ...``: each rank reads its rank and
world size from the environment that torchrun sets, joins the process group
(NCCL on CUDA, gloo on the CPU) and takes its slice of the data; rank 0 writes.

Threads: torch with 2 intra-op threads collapses when another process shares
the 2 cores (OpenMP workers spin and wait on each other: a single-image verdict
measured 608 ms with 2 threads against 11 ms with 1). The library therefore
defaults to **one thread per process** (``import aimeye`` sets it; ``AIMEYE_THREADS``
overrides); on an idle multi-core CPU use more processes (torchrun) or ``--threads``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_THREADS = 1
CPU = torch.device("cpu")


class DeviceError(RuntimeError):
    """The requested device cannot be used here; the message says what to do instead."""


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA if available else CPU; ``cuda`` without a GPU raises :class:`DeviceError`."""
    if name not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}); use --device cpu or --device auto")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: ``$AIMEYE_THREADS`` or :data:`DEFAULT_THREADS`);
    returns the number in use."""
    n = int(os.environ.get("AIMEYE_THREADS", DEFAULT_THREADS)) if n is None else n
    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = CPU

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def slice(self, n: int) -> range:
        """This rank's contiguous share of ``n`` items (the shares tile 0..n in rank order)."""
        lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        return range(lo, hi)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def start(device: str = "auto", threads: int | None = None) -> Ranks:
    """Resolve the device and, under torchrun, join the process group."""
    set_threads(threads)
    if not launched_by_torchrun():
        return Ranks(device=resolve_device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), dev)


def stop(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather(obj, ranks: Ranks) -> list:
    """Every rank's ``obj``, in rank order (a one-element list without torchrun)."""
    if not ranks.distributed:
        return [obj]
    out = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def gather_cat(t: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Concatenate each rank's tensor (of any length) in rank order, on the CPU."""
    return torch.cat([p for p in gather(t.detach().cpu(), ranks)])
