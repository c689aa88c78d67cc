"""Ranks for the experiments: ``torch.distributed`` when launched by ``torchrun``, one process otherwise.

    torchrun --standalone --nproc_per_node 8 -m aimeye experiment all --n-per-class 10000 --max-steps 10000

Each rank attacks its slice of the (filtered) test images (every ``world``-th
image from its rank: the classes stay balanced across ranks), then rank 0
gathers every rank's rows with :func:`torch.distributed.gather_object` and
writes the results. The attacks run on the rank's own device
(``cuda:LOCAL_RANK`` with ``--device cuda``); the process group itself is
``gloo``, because only small Python objects cross it, once, at the end.
Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) there is one rank
and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


class DeviceError(RuntimeError):
    """The requested device is not available (shown as a message, not a traceback)."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group (and tear it down)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, n: int) -> slice:
        """This rank's share of n items: every world-th item from the rank's index."""
        return slice(self.rank, n, self.world)

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` on rank 0, in rank order (None on the other ranks)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup() -> Ranks:
    """Join the process group that ``torchrun`` describes (env://), or run as the only rank."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return Ranks()
    dist.init_process_group(backend="gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns_group=True)


def pick_device(name: str = "auto", ranks: Ranks | None = None) -> torch.device:
    """``auto``: this rank's GPU if there is one, else the CPU; ``cuda`` without a GPU raises DeviceError."""
    if name not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"--device must be auto, cpu or cuda, got {name!r}")
    has_cuda = torch.cuda.is_available()
    if name == "cuda" and not has_cuda:
        raise DeviceError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}); use --device cpu or auto")
    if name == "cpu" or not has_cuda:
        return torch.device("cpu")
    local = ranks.local_rank if ranks else 0
    return torch.device("cuda", local % torch.cuda.device_count())
