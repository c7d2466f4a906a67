"""Data-parallel training over the processes ``torchrun`` starts: process group, global batch, collectives.

``torchrun --nproc_per_node=N scripts/train_vqvae.py ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`process_group` then joins the group (gloo for CPU tensors, NCCL for CUDA ones). A plain
``python scripts/train_vqvae.py`` sets none of them: no group is created and every helper here is the
identity, so a single process trains exactly as it always did.

The contract that makes N processes equal one: ``batch_size`` is the *global* batch. Every rank draws the
same global batch of window indices with the sampler's generator and gathers only its contiguous slice
(:func:`local_batch`), so concatenating the ranks' rows in rank order gives the one-process batch. The
collectives the models need too (the quantizers' codebook statistics of the global batch) live one level
down, in :mod:`motion_vqvae.collectives`, so that the models never import the training room.
"""

from __future__ import annotations

import gc
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from motion_vqvae.collectives import World, active, world
from motion_vqvae.devices import local_rank
from motion_vqvae.errors import InvalidValue


def torchrun_prefix(nproc: int) -> list[str]:
    """``torchrun --standalone --nproc_per_node=nproc`` with this Python: what precedes a script's path."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


COLLECTIVE_TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in a collective, e.g. while rank 0 alone validates or writes a checkpoint."""


@contextmanager
def process_group() -> Iterator[World]:
    """Join the group torchrun describes (if ``WORLD_SIZE`` > 1) for the duration of the block."""
    here = world()
    if here.size <= 1:
        yield here
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(here.local_rank)
        backend = "cpu:gloo,cuda:nccl"  # CUDA tensors over NCCL, the small CPU control messages over gloo
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield world()
    finally:
        # DDP wrappers sit in reference cycles that hold the group's pending work; collected only at
        # interpreter exit, after the group is gone, gloo's threads can abort the process
        # ("terminate called without an active exception") once every run is saved. Free them now.
        gc.collect()
        dist.destroy_process_group()


def local_batch(batch_size: int) -> slice:
    """This rank's rows of a global batch of ``batch_size``; ValueError if it does not split evenly."""
    here = world()
    if batch_size % here.size:
        raise InvalidValue(
            f"batch_size={batch_size} is the global batch and must be divisible by the number of processes "
            f"({here.size}); set --set batch_size={max(here.size, batch_size // here.size * here.size)} or "
            "change --nproc_per_node"
        )
    share = batch_size // here.size
    return slice(here.rank * share, (here.rank + 1) * share)


def agree(error: str | None) -> str | None:
    """Rank 0's verdict (an error message or None) on every rank, so all stop or none does."""
    if not active():
        return error
    message = [error]
    dist.broadcast_object_list(message, src=0)
    return message[0]


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor averaged over ranks in one collective (for logging: equal batches, so global means)."""
    if not active():
        return values
    flat = torch.cat([v.detach().float().reshape(-1) for v in values.values()])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    out, start = {}, 0
    for key, value in values.items():
        out[key] = flat[start : start + value.numel()].view(value.shape)
        start += value.numel()
    return out


def barrier() -> None:
    """Wait for every rank (a CPU collective, so it also works under NCCL without a device)."""
    if active():
        dist.all_reduce(torch.zeros(1))


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` under DistributedDataParallel when there are several ranks, else ``model`` itself.

    ``broadcast_buffers=False``: the quantizer buffers are kept identical by reducing their statistics
    inside the forward pass (see :mod:`motion_vqvae.models.quantizers`), so DDP's per-step copy of rank 0's
    buffers would be a redundant collective.
    """
    if not active():
        return model
    ids = [device.index if device.index is not None else local_rank()] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # Newer torch renames the option (and deprecates the old name); the buffers start equal either way.
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters else None
    return ddp(model, device_ids=ids, gradient_as_bucket_view=True, **{no_sync or "broadcast_buffers": False})


class StepControl:
    """The per-step agreement of all ranks: stop (a signal on any rank, rank 0's deadline) and total_iter.

    One small CPU all-reduce (max) per step, even under NCCL, so it never waits for the GPU. Rank 0's
    ``total_iter`` wins, so the time-budget fitter (run on rank 0) makes the decision for every rank.
    """

    def sync(self, signum: int | None, out_of_time: bool, total_iter: int) -> tuple[int | None, bool, int]:
        """(signal number or None, out of time, total_iter) as every rank sees them this step."""
        if not active():
            return signum, out_of_time, total_iter
        main = dist.get_rank() == 0
        message = torch.tensor([signum or 0, int(out_of_time and main), total_iter if main else 0])
        dist.all_reduce(message, op=dist.ReduceOp.MAX)
        agreed_signal, agreed_time, agreed_total = message.tolist()
        return agreed_signal or None, bool(agreed_time), agreed_total
