"""Collectives over the training processes that hold in a lone process too: sums, row gathers, offsets.

The quantizers (:mod:`motion_vqvae.models.quantizers`) keep codebook statistics of the *global* batch on
every rank with these; the training loop (:mod:`motion_vqvae.training.distributed`) joins the process
group they run in. They live here, below both, so that the models never import the training room. Outside
a process group of more than one rank every helper is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a lone process is rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics and logs, and validates."""
        return self.rank == 0


def active() -> bool:
    """True inside a process group of more than one rank (collectives are needed)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> World:
    """The current process group's view, or torchrun's environment before the group is joined."""
    if active():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place (and returned); the identity for a lone process."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def all_gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's ``(n, ...)`` rows concatenated in rank order: the global batch's rows."""
    if not active():
        return rows
    parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, rows.contiguous())
    return torch.cat(parts)


def row_offset(rows: int) -> tuple[int, int]:
    """(index of this rank's first row in the global batch, global row count) for ``rows`` local rows."""
    here = world() if active() else World()
    return here.rank * rows, here.size * rows
