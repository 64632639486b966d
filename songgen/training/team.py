"""Training on several processes with PyTorch's own distributed training (torchrun + DDP).

Launched by torchrun, every process trains on its share of the batch rows and DDP averages the
gradients, so N processes with `batch_size` B make the same steps as one process with batch B:
the data layout, the checkpoints and resuming do not depend on how many processes there are.
Process 0 alone locks the checkpoint folder, writes checkpoints and prints; every decision that
changes the flow (stop, roll back, save on a signal) is agreed through one small all-reduce at
the points where the loss is read anyway, so no process is left waiting in a collective.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

import torch

from ..config import launched_distributed
from ..errors import ConfigError, DeviceError, SonggenError, SonggenWarning
from ..model.devices import resolve_device


def leave_worker() -> None:
    """End a torchrun worker whose run is complete and saved, at once (no-op outside torchrun).
    Now and then the interpreter's shutdown after distributed training aborted a worker
    (SIGABRT from gloo's threads), which torchrun then reports as a failed run. A program that
    trains under torchrun calls it last, as `songgen train` does; a library never ends its
    caller's process, so train() leaves it to the program."""
    if not launched_distributed():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class PeerStopped(SonggenError):
    """Another process of the run failed and printed why; this one stops without a message."""

    silent = True


class UnusableDevice(DeviceError):
    """A device a process of a distributed run cannot train on. `use` names the device(s) that
    work and `rest` the end of the advice, so that the command line can name its option."""

    def __init__(self, what: str, use: str, rest: str = ""):
        super().__init__(f"{what}; train on the device {use}{rest}", what=what)
        self.use, self.rest = use, rest


class Team:
    """The processes of one run. A run of one process is a Team of one, where every method is
    a no-op, so the training loop has a single code path."""

    def __init__(self, rank: int = 0, world: int = 1, group_started: bool = False):
        self.rank, self.world = rank, world
        self._started = group_started

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device_name: str) -> tuple["Team", torch.device]:
        """Join the torchrun run (if any); returns the team and this process's device."""
        if not launched_distributed():
            return cls(), resolve_device(device_name)
        import torch.distributed as dist

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        try:
            device = cls._own_device(resolve_device(device_name), local)
        except DeviceError:
            if rank:  # every process fails this check alike; process 0 reports it
                raise PeerStopped("process 0 reports it") from None
            raise
        # A script calling songgen.train() may have started the group itself: use it, and
        # leave it for the script to end.
        ours = not dist.is_initialized()
        if ours:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    rank=rank, world_size=world)
        if rank != 0:
            # Process 0 speaks for the run; the others would repeat every warning.
            warnings.simplefilter("ignore", SonggenWarning)
        return cls(rank, world, group_started=ours), device

    def finish(self) -> None:
        """Wait until every process is done (process 0 writes the last checkpoint) before
        leaving, so that none tears the group down under another's feet."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    @staticmethod
    def _own_device(device: torch.device, local: int) -> torch.device:
        import torch.distributed as dist

        if device.type == "mps":
            raise UnusableDevice("distributed training needs CUDA GPUs or CPUs; Apple MPS has "
                                 "no distributed backend", "cpu", ", or run a single process")
        if device.type == "cuda":
            if device.index not in (None, local):
                raise UnusableDevice("with torchrun each process uses the GPU of its local "
                                     "rank", "cuda or auto", f", not {device}")
            here = int(os.environ.get("LOCAL_WORLD_SIZE", local + 1))
            if here > torch.cuda.device_count():
                raise DeviceError(f"torchrun started {here} processes on this machine but it "
                                  f"has {torch.cuda.device_count()} GPU(s); start at most one "
                                  "process per GPU")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_available():
            raise DeviceError("this PyTorch build has no distributed support; run one process")
        return device

    def close(self) -> None:
        if self._started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._started = False

    @property
    def local_world(self) -> int:
        """Processes of this run on this machine (each holds its own copy of the corpus)."""
        return int(os.environ.get("LOCAL_WORLD_SIZE", self.world)) if self.world > 1 else 1

    def lost_contact(self, exc: BaseException) -> bool:
        """Whether `exc` is a collective failing because another process died."""
        if self.world == 1 or not isinstance(exc, RuntimeError):
            return False
        import torch.distributed as dist

        text = str(exc)
        return (isinstance(exc, getattr(dist, "DistError", ())) or
                any(word in text for word in ("gloo", "NCCL", "Connection", "peer")))

    def check_split(self, batch_size: int) -> None:
        """Refuse a batch that does not split evenly over the processes."""
        if batch_size % self.world:
            raise ConfigError(f"batch size {batch_size} does not split evenly over {self.world} "
                              f"processes; use a multiple of {self.world}")

    def rows(self, batch_size: int) -> slice:
        """This process's share of the batch rows (worked out once, by the run's plan)."""
        self.check_split(batch_size)
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    @contextlib.contextmanager
    def together(self):
        """Run a block that may fail on some processes only (process 0 alone checks the
        checkpoint folder); afterwards every process knows whether all of them succeeded."""
        if self.world == 1:
            yield
            return
        try:
            yield
        except BaseException:
            if self._failed_ranks(failed=True)[0] == 0 and not self.main:
                # Process 0 failed too, most likely in the same way, and has said why.
                raise PeerStopped("process 0 of the run failed") from None
            raise
        failed = self._failed_ranks(failed=False)
        if failed:
            raise PeerStopped(f"process {failed[0]} of the run failed")

    def _failed_ranks(self, failed: bool) -> list[int]:
        import torch.distributed as dist

        flags = [None] * self.world
        dist.all_gather_object(flags, failed)
        return [rank for rank, flag in enumerate(flags) if flag]

    def total(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over the processes (a float tensor on this process's device)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(values)
        return values

    def largest(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every process's piece of `tensor`, joined along `dim` in rank order."""
        if self.world == 1:
            return tensor
        import torch.distributed as dist

        pieces = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(pieces, tensor.contiguous())
        return torch.cat(pieces, dim)

    def gather_objects(self, value) -> list:
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module the training step calls: DDP (averaging gradients) when distributed."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
