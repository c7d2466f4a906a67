"""Multi-level and codebook-free quantizers: residual VQ (``rvq``) and finite scalar quantization (``fsq``).

* :class:`ResidualVQ` quantizes the encoding with a first codebook, then what is left (the residual) with a
  second, and so on (as in SoundStream and MoMask). Each level is a full :class:`VectorQuantizer` with its
  own EMA codebook and dead-code reset. ``quantize_dropout`` trains each window, with that probability, on
  only its first ``k`` levels (``k`` uniform in ``1..L``), so decoding the first ``k`` levels of any token
  gives a coarse but natural motion, and level 1 alone is a usable one-level tokenizer.
* :class:`FSQ` projects the encoding to ``len(fsq_levels)`` numbers, bounds each with a tanh and rounds it
  to one of ``fsq_levels[i]`` values (Mentzer et al., 2023). There is no codebook state at all: nothing to
  initialise, reset or synchronise. A token is the mixed-radix index of its digits (first most significant,
  as :meth:`sim2real.token_spec.TokenSpec.fsq_index`).

Both decode from indices with gathers, integer arithmetic and sums over a fixed number of levels: no
data-dependent control flow, so the decode path exports to ONNX.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from motion_vqvae import collectives
from motion_vqvae.models.quantizers import Quantizer, QuantizerOutput, VectorQuantizer


class ResidualVQ(Quantizer):
    """``num_levels`` EMA/reset codebooks of ``nb_code`` codes, each quantizing the previous residual."""

    def __init__(
        self,
        *,
        nb_code: int,
        code_dim: int,
        num_levels: int,
        quantize_dropout: float = 0.0,
        mu: float = 0.99,
        reset_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
            raise ValueError(f"num_quantizers must be a positive int, got {num_levels!r}")
        if not 0.0 <= quantize_dropout <= 1.0:
            raise ValueError(f"quantize_dropout must be a probability in [0, 1], got {quantize_dropout!r}")
        self.levels = nn.ModuleList(
            VectorQuantizer(
                nb_code=nb_code,
                code_dim=code_dim,
                ema=True,
                reset=True,
                mu=mu,
                reset_threshold=reset_threshold,
            )
            for _ in range(num_levels)
        )
        self.nb_code, self.code_dim, self.num_levels = nb_code, code_dim, num_levels
        self.quantize_dropout = quantize_dropout

    def extra_repr(self) -> str:
        return f"num_levels={self.num_levels}, quantize_dropout={self.quantize_dropout}"

    def _flatten(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T') -> (B * T', D) float32
        self._check_latents(z)
        return z.float().permute(0, 2, 1).reshape(-1, self.code_dim)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        b, t = z.shape[0], z.shape[2]
        with torch.autocast(z.device.type, enabled=False):
            flat = self._flatten(z)  # (N, D)
            residual = flat
            codes, indices, losses, stats = [], [], [], []
            for level in self.levels:
                # Each level's commitment pulls the encoder towards what the earlier levels left over.
                code, index, loss, counts = level.quantize_flat(residual)
                residual = residual - code.detach()
                codes.append(code.detach())
                indices.append(index)
                losses.append(loss)
                stats.append(self.code_stats(counts))
            kept = self._kept_levels(b, t, flat.device)  # (N, L) 1 = this level decodes, 0 = dropped
            quant = (torch.stack(codes, dim=1) * kept[..., None]).sum(dim=1)  # (N, D)
            if flat.requires_grad:  # straight-through: the encoder gets the decoder's gradient unchanged
                quant = flat + (quant - flat).detach()
            return QuantizerOutput(
                quant.view(b, t, -1).permute(0, 2, 1),
                torch.stack(indices, dim=-1).view(b, t, self.num_levels),  # (B, T', L)
                torch.stack(losses).sum(),
                torch.stack([s[0] for s in stats]),
                torch.stack([s[1] for s in stats]),
            )

    def _kept_levels(self, b: int, t: int, device: torch.device) -> torch.Tensor:
        """Quantizer dropout mask (N, L): per window, with probability ``quantize_dropout``, keep only
        the first k levels (k uniform in 1..L); all levels otherwise and always outside training.

        The draws are made for the global batch and this rank keeps its windows' share, so data-parallel
        ranks drop exactly what one process with the whole batch would."""
        full = torch.ones(b * t, self.num_levels, device=device)
        if not self.training or self.quantize_dropout <= 0 or self.num_levels == 1:
            return full
        first, total = collectives.row_offset(b)
        drop = torch.rand(total, device=device)[first : first + b] < self.quantize_dropout  # (B,)
        keep = torch.randint(1, self.num_levels + 1, (total,), device=device)[first : first + b]  # (B,)
        keep = torch.where(drop, keep, torch.full_like(keep, self.num_levels))
        mask = (torch.arange(self.num_levels, device=device)[None] < keep[:, None]).float()  # (B, L)
        return mask.repeat_interleave(t, dim=0)  # (N, L), rows ordered as the flattened (B, T')

    def lookup(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T') -> (B, T', L)
        with torch.autocast(z.device.type, enabled=False):
            residual = self._flatten(z)
            indices = []
            for level in self.levels:
                index = level._nearest(residual)
                residual = residual - F.embedding(index, level._codes())
                indices.append(index)
            return torch.stack(indices, dim=-1).view(z.shape[0], z.shape[2], self.num_levels)

    def lookup_levels(self, z: torch.Tensor) -> torch.Tensor:
        return self.lookup(z)

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:  # (B, T', L) -> (B, D, T')
        return self.dequantize_levels(indices)

    def dequantize_levels(self, indices: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        if indices.dim() != 3 or indices.shape[-1] != self.num_levels:
            raise ValueError(
                f"expected indices of shape (B, T', {self.num_levels}) (one per level), "
                f"got {tuple(indices.shape)}"
            )
        used = self.num_levels if levels is None else levels
        if not 1 <= used <= self.num_levels:
            raise ValueError(f"levels must be in [1, {self.num_levels}], got {levels}")
        indices = indices.long()
        out = F.embedding(indices[..., 0], self.levels[0]._codes())  # (B, T', D)
        for level in range(1, used):  # finer levels beyond ``used`` contribute zero
            out = out + F.embedding(indices[..., level], self.levels[level]._codes())
        return out.permute(0, 2, 1)

    @property
    def codebook(self) -> torch.Tensor:  # (L, nb_code, D)
        return torch.stack([level.codebook for level in self.levels])


class FSQ(Quantizer):
    """Finite scalar quantization: ``len(fsq_levels)`` bounded, rounded numbers per token, no codebook state.

    ``project_in`` maps the encoder's ``code_dim`` channels to the digits and ``project_out`` back, so the
    encoder and decoder keep their width. The loss is zero: rounding needs no commitment term.
    """

    def __init__(self, *, code_dim: int, fsq_levels: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        levels = list(fsq_levels)
        if not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in levels):
            raise ValueError(f"fsq_levels must be a non-empty list of ints >= 2, got {fsq_levels!r}")
        self.fsq_levels = tuple(levels)
        self.nb_code, self.code_dim = math.prod(levels), code_dim
        basis = [math.prod(levels[i + 1 :]) for i in range(len(levels))]  # first digit most significant
        self.register_buffer("_radix", torch.tensor(levels, dtype=torch.long), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.project_in = nn.Linear(code_dim, len(levels))
        self.project_out = nn.Linear(len(levels), code_dim)

    def extra_repr(self) -> str:
        return f"fsq_levels={list(self.fsq_levels)}, nb_code={self.nb_code}"

    def _half(self) -> torch.Tensor:  # (d,) float: digit d's centred values are -half .. radix-1-half
        return (self._radix // 2).float()

    def _digits(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D, T') latents -> (bounded values (B, T', d) before rounding, digits (B, T', d) int64)."""
        self._check_latents(z)
        h = self.project_in(z.float().transpose(1, 2))  # (B, T', d)
        radix = self._radix.float()
        # tanh bound so that rounding yields exactly `radix` integers centred on zero (even radices are
        # shifted by half a step, as in the FSQ paper).
        half_l = (radix - 1) * (1 + 1e-3) / 2
        offset = torch.where(self._radix % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        bounded = torch.tanh(h + shift) * half_l - offset  # (B, T', d)
        digits = (bounded.round() + self._half()).long().clamp_min(0).minimum(self._radix - 1)
        return bounded, digits

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(z.device.type, enabled=False):
            bounded, digits = self._digits(z)
            rounded = bounded + (bounded.round() - bounded).detach()  # straight-through rounding
            quant = self.project_out(rounded / self._half()).transpose(1, 2)  # (B, D, T')
            indices = (digits * self._basis).sum(-1)  # (B, T')
            perplexity, usage = self.batch_stats(indices)
            return QuantizerOutput(quant, indices, quant.new_zeros(()), perplexity, usage)

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        with torch.autocast(z.device.type, enabled=False):
            return (self._digits(z)[1] * self._basis).sum(-1)

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:  # (B, T') -> (B, D, T')
        self._check_indices(indices)
        digits = (indices.long()[..., None] // self._basis) % self._radix  # (B, T', d)
        values = (digits.float() - self._half()) / self._half()
        return self.project_out(values).transpose(1, 2)

    @property
    def codebook(self) -> torch.Tensor:  # (nb_code, D): every token's latent
        return self.dequantize(torch.arange(self.nb_code)[None].to(self._radix.device))[0].T.detach()
