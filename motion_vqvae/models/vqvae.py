"""The VQ-VAE: Conv1d encoder -> quantizer -> Conv1d decoder over (B, T, F) motion features.

Built from plain keyword arguments only; :meth:`VQVAE.hparams` returns them so a checkpoint can store
them beside the weights and rebuild the model with ``VQVAE(**hparams)``.
"""

from __future__ import annotations

import torch
from torch import nn

from motion_vqvae.models.encdec import Decoder, Encoder
from motion_vqvae.models.quantizers import QuantizerOutput, build_quantizer


class VQVAE(nn.Module):
    """Motion tokenizer: ``frames_per_token = stride_t**down_t`` frames become one code index.

    ``code_dim`` is both the encoder output width (``output_emb_width``) and the codebook vector size.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        width: int = 512,
        depth: int = 3,
        down_t: int = 2,
        stride_t: int = 2,
        dilation_growth_rate: int = 3,
        activation: str = "relu",
        norm: str = "none",
        causal: bool = False,
        quantizer: str = "ema_reset",
        nb_code: int = 512,
        code_dim: int = 512,
        mu: float = 0.99,
        reset_threshold: float = 1.0,
        l2_normalize: bool = False,
    ) -> None:
        super().__init__()
        self._hparams = dict(
            in_dim=in_dim,
            width=width,
            depth=depth,
            down_t=down_t,
            stride_t=stride_t,
            dilation_growth_rate=dilation_growth_rate,
            activation=activation,
            norm=norm,
            causal=causal,
            quantizer=quantizer,
            nb_code=nb_code,
            code_dim=code_dim,
            mu=mu,
            reset_threshold=reset_threshold,
            l2_normalize=l2_normalize,
        )
        conv_keys = ("in_dim", "width", "depth", "down_t", "stride_t", "dilation_growth_rate", "activation")
        conv = {k: self._hparams[k] for k in (*conv_keys, "norm", "causal")}
        conv["output_emb_width"] = code_dim
        self.encoder = Encoder(**conv)
        self.decoder = Decoder(**conv)
        self.quantizer = build_quantizer(
            quantizer,
            nb_code=nb_code,
            code_dim=code_dim,
            mu=mu,
            reset_threshold=reset_threshold,
            l2_normalize=l2_normalize,
        )
        self.in_dim = in_dim

    @property
    def frames_per_token(self) -> int:
        return self._hparams["stride_t"] ** self._hparams["down_t"]

    @property
    def causal(self) -> bool:
        return self._hparams["causal"]

    def hparams(self) -> dict[str, int | float | str | bool]:
        """Plain-typed constructor arguments: ``VQVAE(**model.hparams())`` rebuilds this architecture."""
        return dict(self._hparams)

    def _check_motion(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected features of shape (B, T, {self.in_dim}), got {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % self.frames_per_token:
            raise ValueError(
                f"sequence length T={x.shape[1]} must be a positive multiple of "
                f"frames_per_token={self.frames_per_token}"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """Reconstruct (B, T, F) features; the QuantizerOutput carries the loss and code statistics."""
        self._check_motion(x)
        z = self.encoder(x.transpose(1, 2))  # (B, D, T')
        q = self.quantizer(z)
        recon = self.decoder(q.quantized).transpose(1, 2)  # (B, T, F)
        return recon, q

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) features -> (B, T / frames_per_token) int64 code indices (never moves the codebook)."""
        self._check_motion(x)
        return self.quantizer.lookup(self.encoder(x.transpose(1, 2)))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T') code indices -> (B, T' * frames_per_token, F) features."""
        if indices.dim() != 2:
            raise ValueError(f"expected indices of shape (B, T'), got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self._hparams["nb_code"]):
            raise ValueError(
                f"indices must lie in [0, {self._hparams['nb_code']}), got range "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        return self.decoder(self.quantizer.dequantize(indices)).transpose(1, 2)  # (B, T, F)
