"""The VQ-VAE: Conv1d encoder(s) -> quantizer(s) -> one Conv1d decoder over (B, T, F) motion features.

Built from plain keyword arguments only; :meth:`VQVAE.hparams` returns them so a checkpoint can store
them beside the weights and rebuild the model with ``VQVAE(**hparams)``. The token structure (levels,
sizes, FSQ digits, body parts, frames per token, fps) is :attr:`VQVAE.token_spec`.

Body parts (``parts``: name -> feature indices) get one encoder and one quantizer each, each seeing only its
own features, so a part's tokens describe that part alone (as LoM's upper/lower-body tokenizers); their
latents are concatenated and decoded jointly into one motion, so the parts stay coordinated.

``joint_range`` bounds the decoded joint angles by construction: the decoder's raw ``dof_pos`` channels
go through a soft bound (:class:`JointRangeBound`) that is the identity inside the range and bends into
the robot's limits over its last 5 %, so no token, however extreme, decodes a joint outside the robot's
range, and every consumer (evaluation, wrapper, batched decoder, the ONNX decoder) inherits it. The range
is stored in the hyper-parameters in normalised feature units (``(limit - mean) / std`` of the layout the
model was trained with): the model stays unit-free and the checkpoint holds the range itself, never a name
to look it up again. ``dof_pos`` is the only joint-angle channel a decoded motion is built from
(``dof_vel`` is redundant there), so it is the one bounded.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from motion_vqvae.models.encdec import Decoder, Encoder
from motion_vqvae.models.quantizers import QUANTIZERS, QuantizerOutput
from motion_vqvae.models.tokens import MULTI_LEVEL, TokenQuantizer, build_part_quantizer
from sim2real.token_spec import TokenSpec

KNEE_SHARE = 0.05
"""Share of a joint's range, inside each limit, over which the joint-range bound bends into the limit."""


class PartEncoder(nn.Module):
    """One encoder per body part on that part's feature columns; latents concatenated part-major."""

    def __init__(self, parts: dict[str, list[int]], **conv: object) -> None:
        super().__init__()
        self.encoders = nn.ModuleList()
        for p, (name, columns) in enumerate(parts.items()):
            if not columns:
                raise ValueError(f"body part {name!r} owns no feature columns")
            self.register_buffer(f"_columns_{p}", torch.tensor(columns, dtype=torch.long), persistent=False)
            self.encoders.append(Encoder(**{**conv, "in_dim": len(columns)}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, T) -> (B, P*D, T')
        return torch.cat(
            [enc(x.index_select(1, getattr(self, f"_columns_{p}"))) for p, enc in enumerate(self.encoders)],
            dim=1,
        )


class VQVAE(nn.Module):
    """Motion tokenizer: ``frames_per_token = stride_t**down_t`` frames become one token.

    ``code_dim`` is both each part's encoder output width (``output_emb_width``) and its code vector size.
    ``fps`` is the frame rate of the training motion: part of the token structure, so required.
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
        num_quantizers: int = 1,
        quantize_dropout: float = 0.0,
        fsq_levels: list[int] | None = None,
        parts: dict[str, list[int]] | None = None,
        joint_range: dict[str, list[float] | list[int]] | None = None,
        fps: float,
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
            num_quantizers=num_quantizers,
            quantize_dropout=quantize_dropout,
            fsq_levels=None if fsq_levels is None else list(fsq_levels),
            parts=None if parts is None else {str(k): [int(i) for i in v] for k, v in parts.items()},
            joint_range=None if joint_range is None else _check_joint_range(joint_range, in_dim),
            fps=float(fps),
        )
        if quantizer not in (*QUANTIZERS, *MULTI_LEVEL):
            raise ValueError(
                f"Unknown quantizer {quantizer!r}. Allowed: {sorted([*QUANTIZERS, *MULTI_LEVEL])}"
            )
        if quantizer != "rvq" and (num_quantizers != 1 or quantize_dropout):
            raise ValueError(
                f"num_quantizers={num_quantizers} and quantize_dropout={quantize_dropout} "
                "need quantizer: rvq "
                f"(got {quantizer!r}); set num_quantizers=1 and quantize_dropout=0 for other quantizers"
            )
        part_names = tuple(self._hparams["parts"] or ("body",))
        self.token_spec = TokenSpec(
            kind="rvq" if quantizer == "rvq" else "fsq" if quantizer == "fsq" else "vq",
            num_levels=num_quantizers,
            nb_code=nb_code if quantizer != "fsq" else math.prod(fsq_levels or [1]),
            fsq_levels=tuple(fsq_levels) if quantizer == "fsq" and fsq_levels else None,
            parts=part_names,
            frames_per_token=stride_t**down_t,
            fps=float(fps),
        )
        conv_keys = ("in_dim", "width", "depth", "down_t", "stride_t", "dilation_growth_rate", "activation")
        conv = {k: self._hparams[k] for k in (*conv_keys, "norm", "causal")}
        conv["output_emb_width"] = code_dim
        self.encoder = PartEncoder(parts, **conv) if parts else Encoder(**conv)
        self.decoder = Decoder(**{**conv, "output_emb_width": code_dim * len(part_names)})
        keys = ("nb_code", "code_dim", "mu", "reset_threshold", "l2_normalize", "num_quantizers")
        quantizer_kw = {k: self._hparams[k] for k in (*keys, "quantize_dropout", "fsq_levels")}
        part_quantizers = [build_part_quantizer(quantizer, **quantizer_kw) for _ in part_names]
        self.quantizer = TokenQuantizer(part_quantizers, self.token_spec)
        self.in_dim = in_dim
        self.bound = JointRangeBound(self._hparams["joint_range"]) if joint_range is not None else None

    @property
    def frames_per_token(self) -> int:
        return self._hparams["stride_t"] ** self._hparams["down_t"]

    @property
    def causal(self) -> bool:
        return self._hparams["causal"]

    def hparams(self) -> dict[str, object]:
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
        return self.decode_latents(q.quantized), q

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) features -> int64 tokens ``(B, T')`` (one stream) or ``(B, T', S)``; no state change."""
        self._check_motion(x)
        return self.quantizer.lookup(self.encoder(x.transpose(1, 2)))

    def decode(self, indices: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Tokens ``(B, T')``/``(B, T', S)`` -> (B, T' * frames_per_token, F) features.

        ``levels=K`` decodes with the first K levels of every part (finer levels contribute zero).
        """
        self.check_indices(indices)
        return self.decode_latents(self.quantizer.dequantize(indices, levels))

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:  # (B, D, T') -> (B, T, F)
        """Decoder plus the joint-range bound: the one output path of training, decoding and export."""
        out = self.decoder(latents).transpose(1, 2)  # (B, T, F)
        return out if self.bound is None else self.bound(out)

    def check_indices(self, indices: torch.Tensor) -> None:
        """ValueError naming the allowed shape and range, as :meth:`TokenSpec.check_tokens` does."""
        self.token_spec.check_tokens(indices.detach().cpu().numpy(), batched=True)


class JointRangeBound(nn.Module):
    """``(B, T, F)`` raw decoder output -> the same with ``dof_pos`` columns inside ``(lower, upper)``.

    The identity between two knees set :data:`KNEE_SHARE` of each joint's range inside its limits; past a
    knee, ``knee + w * tanh((x - knee) / w)`` (``w`` the knee's distance to its limit) bends the output
    smoothly into the limit. Why this shape: retargeted data sits at some limits (the G1's ankle rolls for a
    quarter of g1_moves' frames), so a bound that compresses the whole range (one ``tanh``) would need
    unbounded raw outputs there and slow the decoder everywhere; this one changes nothing in the interior (an
    untrained decoder behaves as an unbounded one, near the data's mean), costs at most a few milliradians
    at a limit, keeps a gradient past the knee (a clamp would cut it), and never leaves the range.
    """

    def __init__(self, joint_range: dict[str, list]) -> None:
        super().__init__()
        self.start, self.stop = (int(c) for c in joint_range["columns"])
        lower = torch.tensor(joint_range["lower"], dtype=torch.float32)
        upper = torch.tensor(joint_range["upper"], dtype=torch.float32)
        width = KNEE_SHARE * (upper - lower)
        # Non-persistent: the hyper-parameters are the stored fact; the state_dict keeps its old keys.
        self.register_buffer("width", width, persistent=False)
        self.register_buffer("knee_low", lower + width, persistent=False)
        self.register_buffer("knee_high", upper - width, persistent=False)

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        raw = out[..., self.start : self.stop]
        high = self.knee_high + self.width * torch.tanh(torch.relu(raw - self.knee_high) / self.width)
        low = self.knee_low - self.width * torch.tanh(torch.relu(self.knee_low - raw) / self.width)
        dof = torch.where(raw > self.knee_high, high, torch.where(raw < self.knee_low, low, raw))
        return torch.cat([out[..., : self.start], dof, out[..., self.stop :]], dim=-1)


def _check_joint_range(joint_range: dict[str, list], in_dim: int) -> dict[str, list]:
    """Plain-typed copy of a ``{"columns": [start, stop], "lower": [...], "upper": [...]}`` range."""
    if not isinstance(joint_range, dict) or set(joint_range) != {"columns", "lower", "upper"}:
        got = sorted(joint_range) if isinstance(joint_range, dict) else type(joint_range).__name__
        raise ValueError(f"joint_range must have the keys ['columns', 'lower', 'upper'], got {got}")
    start, stop = (int(c) for c in joint_range["columns"])
    lower = [float(v) for v in joint_range["lower"]]
    upper = [float(v) for v in joint_range["upper"]]
    if not 0 <= start < stop <= in_dim or len(lower) != stop - start or len(upper) != stop - start:
        raise ValueError(
            f"joint_range: columns [{start}, {stop}) with {len(lower)} lower and {len(upper)} upper "
            f"bounds do not fit {in_dim} feature columns; one bound pair per dof_pos column is needed"
        )
    narrow = [i for i, (a, b) in enumerate(zip(lower, upper, strict=True)) if not a < b]
    if narrow:
        raise ValueError(f"joint_range: lower must be below upper, not at dof columns {narrow}")
    return {"columns": [start, stop], "lower": lower, "upper": upper}
