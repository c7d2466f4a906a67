"""The model's token structure: one quantizer per body part, streams ordered as :class:`TokenSpec` says.

:class:`TokenQuantizer` is what :class:`~motion_vqvae.models.vqvae.VQVAE` holds as ``quantizer``. It splits
the encoder output ``(B, P * code_dim, T')`` into the ``P`` parts' latents, quantizes each with its own
quantizer (VQ, RVQ or FSQ, all built alike) and concatenates the results again for the joint decoder.
Indices are ``(B, T')`` for a one-stream tokenizer and ``(B, T', S)`` otherwise, ``S = P * levels``,
part-major: exactly the layout of :class:`sim2real.token_spec.TokenSpec`.
"""

from __future__ import annotations

import torch
from torch import nn

from motion_vqvae.models.multilevel import FSQ, ResidualVQ
from motion_vqvae.models.quantizers import Quantizer, QuantizerOutput, build_quantizer
from sim2real.token_spec import TokenSpec

MULTI_LEVEL = ("rvq", "fsq")


def build_part_quantizer(
    name: str,
    *,
    nb_code: int,
    code_dim: int,
    mu: float,
    reset_threshold: float,
    l2_normalize: bool,
    num_quantizers: int,
    quantize_dropout: float,
    fsq_levels: list[int] | None,
) -> Quantizer:
    """One part's quantizer from the model's quantizer keywords (each name uses the ones it understands)."""
    if name == "rvq":
        if l2_normalize:
            raise ValueError(
                "l2_normalize_codes applies to one-level VQ only; set it false with quantizer: rvq"
            )
        return ResidualVQ(
            nb_code=nb_code,
            code_dim=code_dim,
            num_levels=num_quantizers,
            quantize_dropout=quantize_dropout,
            mu=mu,
            reset_threshold=reset_threshold,
        )
    if name == "fsq":
        if not fsq_levels:
            raise ValueError("quantizer: fsq needs fsq_levels, e.g. [8, 5, 5, 5]")
        return FSQ(code_dim=code_dim, fsq_levels=fsq_levels)
    return build_quantizer(
        name,
        nb_code=nb_code,
        code_dim=code_dim,
        mu=mu,
        reset_threshold=reset_threshold,
        l2_normalize=l2_normalize,
    )


class TokenQuantizer(nn.Module):
    """``P`` part quantizers over channel blocks of one latent; indices laid out as ``spec``."""

    def __init__(self, parts: list[Quantizer], spec: TokenSpec) -> None:
        super().__init__()
        if len(parts) != len(spec.parts) or any(q.num_levels != spec.num_levels for q in parts):
            raise ValueError(f"TokenQuantizer: {len(parts)} part quantizers do not match {spec}")
        self.parts = nn.ModuleList(parts)
        self.spec = spec
        self.code_dim = parts[0].code_dim  # per part
        self.nb_code = spec.nb_code

    @property
    def latent_dim(self) -> int:
        """Channels of the joint latent: one ``code_dim`` block per part."""
        return self.code_dim * len(self.parts)

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:  # (B, P*D, T') -> P x (B, D, T')
        if z.dim() != 3 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (B, {self.latent_dim}, T'), got {tuple(z.shape)}")
        return z.split(self.code_dim, dim=1)

    def _streams(self, per_part: list[torch.Tensor]) -> torch.Tensor:  # P x (B, T', L) -> (B, T'[, S])
        indices = torch.cat(per_part, dim=-1)
        return indices[..., 0] if self.spec.is_single else indices

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize every part; perplexity and usage are per stream ``(S,)``, the loss is their sum."""
        outs = [q(part) for q, part in zip(self.parts, self._split(z), strict=True)]
        per_part = [o.indices if o.indices.dim() == 3 else o.indices[..., None] for o in outs]
        return QuantizerOutput(
            torch.cat([o.quantized for o in outs], dim=1),
            self._streams(per_part),
            torch.stack([o.loss for o in outs]).sum(),
            torch.cat([o.perplexity.reshape(-1) for o in outs]),
            torch.cat([o.usage.reshape(-1) for o in outs]),
        )

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codes only (no state change): ``(B, T')`` or ``(B, T', S)`` int64."""
        return self._streams([q.lookup_levels(p) for q, p in zip(self.parts, self._split(z), strict=True)])

    def dequantize(self, indices: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """``(B, T')``/``(B, T', S)`` indices -> ``(B, P*D, T')``; ``levels=K`` keeps each part's first K."""
        if levels is not None:
            self.spec.check_levels(levels)
        if self.spec.is_single:
            if indices.dim() != 2:
                raise ValueError(f"expected indices of shape (B, T'), got {tuple(indices.shape)}")
            indices = indices[..., None]
        elif indices.dim() != 3 or indices.shape[-1] != self.spec.num_streams:
            raise ValueError(
                f"expected indices of shape (B, T', {self.spec.num_streams}) (streams "
                f"{list(self.spec.stream_names)}), got {tuple(indices.shape)}"
            )
        per_level = self.spec.num_levels
        latents = [
            q.dequantize_levels(indices[..., p * per_level : (p + 1) * per_level], levels)
            for p, q in enumerate(self.parts)
        ]
        return torch.cat(latents, dim=1)

    @property
    def codebook(self) -> torch.Tensor:
        """Effective code vectors: ``(nb_code, D)`` for one stream, else ``(S, nb_code, D)`` part-major."""
        books = [q.codebook.reshape(-1, self.nb_code, self.code_dim) for q in self.parts]
        stacked = torch.cat(books)  # (S, K, D)
        return stacked[0] if self.spec.is_single else stacked
