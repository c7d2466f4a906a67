"""Vector quantizers behind one interface, written by hand so every bit of state is a buffer we own.

Names (see :func:`build_quantizer`): ``orig`` (straight-through, codebook learned by a codebook loss),
``ema`` (codebook is an exponential moving average of its encodings), ``reset`` (``orig`` plus dead-code
re-seeding), ``ema_reset`` (EMA plus re-seeding). The multi-level ``rvq`` and ``fsq`` live in
:mod:`motion_vqvae.models.multilevel`; :mod:`motion_vqvae.models.tokens` combines them per body part.

Loss convention: ``QuantizerOutput.loss`` is *unweighted*. It is the commitment term
``mse(z, sg(e))`` and, for the gradient-trained codebooks (``orig``, ``reset``), also the codebook term
``mse(e, sg(z))``. The training loop multiplies it by its ``commit`` weight (with Adam the scale of a term
that alone drives the codebook does not matter, so one weight serves both).

Data-parallel training (:mod:`motion_vqvae.collectives`): every statistic that updates a codebook
is that of the *global* batch on every rank, so all ranks hold the same codebook as one process would. The
first batch's seeds are drawn from the all-gathered encodings; each step's code hit counts, EMA sums and
dead-code replacement candidates travel in one all-reduce per codebook. Random choices use the same global
RNG on every rank, over global row indices. With one process every collective is the identity.

The training step never reads a tensor on the host (no ``.item()``, ``bool(tensor)``): on a GPU each read
would stall the pipeline, so dead-code re-seeding is branch-free.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from motion_vqvae import collectives


class QuantizerOutput(NamedTuple):
    """What every quantizer returns (a NamedTuple, so it also traces/exports as a plain tuple)."""

    quantized: torch.Tensor  # (B, D, T') straight-through: forward = codes, backward = identity to z
    indices: torch.Tensor  # (B, T') int64
    loss: torch.Tensor  # () unweighted commitment (+ codebook) loss, see module docstring
    perplexity: torch.Tensor  # () or (levels,) exp(entropy) of this batch's code histogram, in [1, nb_code]
    usage: torch.Tensor  # () or (levels,) fraction of the codebook used by this batch, in (0, 1]


class Quantizer(nn.Module, ABC):
    """Interface shared by all quantizers: quantize, indices -> latents, codebook for export.

    Subclasses keep all state in parameters/buffers so ``state_dict`` resumes training exactly. Multi-level
    quantizers (``num_levels > 1``) add a trailing level axis to ``indices`` and a leading one to
    ``codebook``; :meth:`dequantize_levels` and :meth:`lookup_levels` give every quantizer that shape.
    """

    nb_code: int
    code_dim: int
    num_levels: int = 1

    @abstractmethod
    def forward(self, z: torch.Tensor) -> QuantizerOutput:  # z: (B, D, T')
        """Quantize encoder latents."""

    @abstractmethod
    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:  # (B, T') -> (B, D, T')
        """Latents for given code indices: the path the on-robot decoder exports."""

    @abstractmethod
    def lookup(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T') -> (B, T') int64
        """Nearest-code indices only: never updates state and avoids non-exportable ops (for encoder.onnx)."""

    @property
    @abstractmethod
    def codebook(self) -> torch.Tensor:  # (nb_code, code_dim)
        """The effective code vectors (detached), e.g. for ``codebook.npy``."""

    def dequantize_levels(self, indices: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """(B, T', num_levels) indices -> (B, D, T') latents from the first ``levels`` levels (all: None)."""
        return self.dequantize(indices[..., 0])

    def lookup_levels(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T') -> (B, T', num_levels)
        """:meth:`lookup` with the level axis always present."""
        return self.lookup(z)[..., None]

    def _check_latents(self, z: torch.Tensor) -> None:
        if z.dim() != 3 or z.shape[1] != self.code_dim:
            raise ValueError(f"expected latents of shape (B, {self.code_dim}, T'), got {tuple(z.shape)}")

    def _check_indices(self, indices: torch.Tensor) -> None:
        if indices.dim() != 2 or indices.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"expected integer indices of shape (B, T'), got {indices.dtype} {tuple(indices.shape)}"
            )

    def batch_stats(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(perplexity, usage fraction) of a batch of indices (the global batch's when training)."""
        counts = self.histogram(indices)
        return self.code_stats(collectives.all_reduce_sum(counts) if self.training else counts)

    def histogram(self, indices: torch.Tensor) -> torch.Tensor:
        """Hits per code ``(K,)`` float32 of any shape of indices.

        A scatter-add rather than ``torch.bincount``, whose CUDA version reads the largest index back to
        the host to size its output: a stall at every training step.
        """
        flat = indices.reshape(-1)
        ones = torch.ones(flat.shape, dtype=torch.float32, device=flat.device)
        return torch.zeros(self.nb_code, device=flat.device).index_add_(0, flat, ones)

    @staticmethod
    def code_stats(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(perplexity, usage fraction) of a code histogram ``(K,)``."""
        probs = counts / counts.sum().clamp_min(1.0)
        perplexity = torch.exp(-torch.special.xlogy(probs, probs).sum())
        return perplexity, (counts > 0).float().mean()


class VectorQuantizer(Quantizer):
    """Nearest-neighbour VQ; ``ema`` picks the codebook update rule, ``reset`` re-seeds dead codes.

    State (all in ``state_dict``): ``embed`` (a Parameter when trained by gradient, else a buffer),
    ``ema_sum`` (EMA only), ``ema_count`` (EMA of per-batch hits per code, drives dead-code detection),
    ``initialised``. Training mode initialises the codebook from the first batch's encodings and updates
    it; eval mode is a pure lookup. Random choices use torch's global RNG, so seeding and restoring the
    RNG state make a resumed run identical.

    ``reset_threshold`` is relative to the hits a code would get if all were used equally
    (``batch latents / nb_code``): 0.5 re-seeds codes used less than half as often as average, whatever the
    batch size, window length or vocabulary size.
    """

    def __init__(
        self,
        *,
        nb_code: int,
        code_dim: int,
        ema: bool,
        reset: bool,
        mu: float = 0.99,
        reset_threshold: float = 1.0,
        l2_normalize: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("nb_code", nb_code), ("code_dim", code_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= mu < 1.0:
            raise ValueError(f"mu (EMA decay) must be in [0, 1), got {mu!r}")
        if reset_threshold < 0:
            raise ValueError(f"reset_threshold must be >= 0, got {reset_threshold!r}")
        self.nb_code, self.code_dim = nb_code, code_dim
        self.ema, self.reset = ema, reset
        self.mu, self.reset_threshold, self.l2_normalize = mu, reset_threshold, l2_normalize
        init = torch.randn(nb_code, code_dim)  # replaced by real encodings on the first training batch
        if ema:
            self.register_buffer("embed", init)
            self.register_buffer("ema_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)
        self.register_buffer("ema_count", torch.zeros(nb_code))
        self.register_buffer("initialised", torch.tensor(False))
        self._initialised_seen = False  # host mirror of a True `initialised`: read the buffer only until then

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._initialised_seen = False  # a loaded state may be uninitialised again

    def extra_repr(self) -> str:
        return (
            f"nb_code={self.nb_code}, code_dim={self.code_dim}, ema={self.ema}, reset={self.reset}, "
            f"mu={self.mu}, reset_threshold={self.reset_threshold}, l2_normalize={self.l2_normalize}"
        )

    def _codes(self) -> torch.Tensor:  # (K, D), differentiable when embed is a Parameter
        return F.normalize(self.embed, dim=-1) if self.l2_normalize else self.embed

    @property
    def codebook(self) -> torch.Tensor:
        return self._codes().detach()

    def _flatten(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T') -> (B * T', D) float32
        self._check_latents(z)
        flat = z.float().permute(0, 2, 1).reshape(-1, self.code_dim)
        return F.normalize(flat, dim=-1) if self.l2_normalize else flat

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):
            return self._nearest(self._flatten(z)).view(z.shape[0], z.shape[2])  # (B, T')

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        # Distances and EMA statistics stay in float32 even under mixed-precision autocast.
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(self._flatten(z), z.shape[0], z.shape[2])

    def _quantize(self, flat: torch.Tensor, b: int, t: int) -> QuantizerOutput:
        quant, indices, loss, counts = self.quantize_flat(flat)
        if flat.requires_grad:  # straight-through estimator; without gradients return the exact codes
            quant = flat + (quant - flat).detach()
        perplexity, usage = self.code_stats(counts)
        quant = quant.view(b, t, -1).permute(0, 2, 1)
        return QuantizerOutput(quant, indices.view(b, t), loss, perplexity, usage)

    def quantize_flat(
        self, flat: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, D) encodings -> (codes (N, D), indices (N,), unweighted loss, code hits (K,)).

        Training also updates the state, and the hits are then the global batch's. The codes are read
        *before* this step's codebook update, so they are exactly the vectors the indices name at lookup
        time (an update or a re-seed must not change what this batch decodes).
        """
        if self.training and not self._initialised_seen:
            if not bool(self.initialised):  # read once per fresh or loaded state, never per step
                self._init_codebook(flat.detach())
            self._initialised_seen = True
        indices = self._nearest(flat.detach())  # (N,)
        quant = F.embedding(indices, self._codes())  # (N, D), a copy; differentiable when a Parameter
        if self.training:
            counts = self._update(flat.detach(), indices)
        else:
            counts = self.histogram(indices)
        loss = F.mse_loss(flat, quant.detach())
        if not self.ema:
            loss = loss + F.mse_loss(quant, flat.detach())
        return quant, indices, loss, counts

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        self._check_indices(indices)
        return F.embedding(indices.long(), self._codes()).permute(0, 2, 1)  # (B, D, T')

    @torch.no_grad()
    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N,)
        codes = self._codes()
        # argmin ||x - e||^2 = argmin (||e||^2 - 2 x.e): ||x||^2 is constant per row.
        return torch.addmm((codes**2).sum(-1), flat, codes.t(), alpha=-2.0).argmin(-1)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Count hits, apply the EMA step, then re-seed codes whose EMA hit count fell below threshold.

        Returns the global batch's hits per code. A re-seeded code restarts at the average hit count, so it
        has time to attract encodings. Every code gets a candidate replacement, a random encoding of the
        global batch (uniform over its rows); only dead codes take theirs. Each rank contributes the
        candidates among its own rows and the all-reduce (sum) completes them, so they travel with the
        counts and sums in one collective instead of an all-gather of every encoding.
        """
        offset, total = collectives.row_offset(len(flat))
        expected = total / self.nb_code  # hits per code per batch if all were used equally
        columns = [self.histogram(indices).to(flat.dtype)[:, None]]  # (K, 1)
        if self.ema:
            columns.append(torch.zeros_like(self.ema_sum).index_add_(0, indices, flat))  # (K, D)
        if self.reset:
            rows = torch.randint(total, (self.nb_code,), device=flat.device) - offset  # (K,) local rows
            mine = (rows >= 0) & (rows < len(flat))
            columns.append(torch.where(mine[:, None], flat[rows.clamp(0, len(flat) - 1)], 0.0))  # (K, D)
        stats = collectives.all_reduce_sum(torch.cat(columns, dim=1))
        counts = stats[:, 0]
        self.ema_count.mul_(self.mu).add_(counts, alpha=1.0 - self.mu)
        if self.ema:
            self.ema_sum.mul_(self.mu).add_(stats[:, 1 : 1 + self.code_dim], alpha=1.0 - self.mu)
            alive = self.ema_count > 1e-5  # long-unused codes keep their vector instead of collapsing to 0
            means = self.ema_sum / self.ema_count.clamp_min(1e-5)[:, None]
            self.embed.copy_(torch.where(alive[:, None], means, self.embed))
        if self.reset:
            dead = self.ema_count < self.reset_threshold * expected  # (K,)
            self._reseed(dead, stats[:, -self.code_dim :], expected)
        return counts

    @torch.no_grad()
    def _reseed(self, dead: torch.Tensor, seeds: torch.Tensor, expected: float) -> None:
        """Codes ``dead`` (K,) take their ``seeds`` (K, D) and restart at ``expected`` hits."""
        # Through .data: this step's graph may hold embed (l2_normalize) and must stay valid.
        self.embed.data.copy_(torch.where(dead[:, None], seeds, self.embed.data))
        self.ema_count.copy_(torch.where(dead, expected, self.ema_count))
        if self.ema:
            self.ema_sum.copy_(torch.where(dead[:, None], seeds * expected, self.ema_sum))

    @torch.no_grad()
    def _init_codebook(self, flat: torch.Tensor) -> None:
        """Seed the codebook with random encodings of the first (global) batch, tiled with noise if few."""
        flat = collectives.all_gather_rows(flat)
        if len(flat) < self.nb_code:
            reps = -(-self.nb_code // len(flat))
            # Copies of one encoding must differ by far more than float32 resolves in a distance
            # (~1e-7 of |e|^2): at a jitter of 0.01/sqrt(D) the copies tied, and the 1e-7 by which one
            # process's encodings differ from several processes' (batch-size-dependent conv blocking)
            # flipped which copy was nearest, so two processes drifted from one by whole code hits.
            std = (0.1 * flat.std(dim=0, correction=0, keepdim=True)).clamp_min(1e-4)  # (1, D)
            flat = (
                flat.repeat(reps, 1) + torch.randn(len(flat) * reps, flat.shape[1], device=flat.device) * std
            )
        expected = len(flat) / self.nb_code
        seeds = flat[torch.randperm(len(flat), device=flat.device)[: self.nb_code]]  # (K, D)
        self.embed.copy_(seeds)
        self.ema_count.fill_(max(expected, 1e-3))
        if self.ema:
            self.ema_sum.copy_(seeds * self.ema_count[:, None])
        self.initialised.fill_(True)


_VQ_VARIANTS = {
    "orig": (False, False),
    "ema": (True, False),
    "reset": (False, True),
    "ema_reset": (True, True),
}

QUANTIZERS: dict[str, Callable[..., Quantizer]] = {
    name: functools.partial(VectorQuantizer, ema=ema, reset=reset)
    for name, (ema, reset) in _VQ_VARIANTS.items()
}
"""Name -> constructor taking ``nb_code, code_dim, mu`` and variant-specific keywords; add RVQ/FSQ here."""


def build_quantizer(
    name: str, *, nb_code: int, code_dim: int, mu: float = 0.99, **kwargs: object
) -> Quantizer:
    """Build a quantizer by its config name (e.g. ``"ema_reset"``); extra keywords go to its constructor."""
    if name not in QUANTIZERS:
        raise ValueError(f"Unknown quantizer {name!r}. Allowed: {sorted(QUANTIZERS)}")
    return QUANTIZERS[name](nb_code=nb_code, code_dim=code_dim, mu=mu, **kwargs)
