"""Conv1d encoder and decoder: dilated residual stacks around ``down_t`` stride-``stride_t`` stages.

Every convolution is a :class:`PaddedConv1d`, which pads explicitly instead of relying on
``nn.Conv1d(padding=...)``. In causal mode it pads on the left only, so nothing looks ahead and each conv
has a known left ``context`` (frames of past input it needs); a streaming decoder can later cache exactly
that many inputs per conv and run one token per call. Non-causal mode pads symmetrically.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "gelu", "silu")
NORMS = ("none", "layer", "group")


def make_activation(name: str) -> nn.Module:
    """One activation module by name, so configs stay plain strings."""
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"Unknown activation {name!r}. Allowed: {list(ACTIVATIONS)}")


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, C, T) tensor: per frame, so it never mixes time steps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, C, T)


def make_norm(name: str, channels: int, causal: bool) -> nn.Module:
    """Normalisation for (B, C, T) activations.

    GroupNorm pools statistics over time, i.e. it looks at future frames, so it is refused when causal.
    """
    if name == "none":
        return nn.Identity()
    if name == "layer":
        return ChannelLayerNorm(channels)
    if name == "group":
        if causal:
            raise ValueError(
                "norm='group' pools statistics over the whole sequence and breaks causality; "
                "with causal=True use norm='layer' or 'none'"
            )
        # Up to 32 groups (the usual choice) that divide the channel count evenly.
        return nn.GroupNorm(math.gcd(channels, 32), channels)
    raise ValueError(f"Unknown norm {name!r}. Allowed: {list(NORMS)}")


class PaddedConv1d(nn.Conv1d):
    """Conv1d whose padding keeps ``T_out = T_in / stride``; causal mode pads on the left only.

    ``context`` is how many past input frames each output needs beyond the current stride block: the
    state a streaming step must cache for this conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
    ) -> None:
        total = (kernel_size - 1) * dilation + 1 - stride
        if total < 0:
            raise ValueError(
                f"kernel_size {kernel_size} (dilation {dilation}) is shorter than stride {stride}"
            )
        self.causal = causal
        self.context = total if causal else 0
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)
        symmetric = self.pad[0] == self.pad[1]
        # Symmetric padding goes into the conv itself (no extra copy); asymmetric padding is an F.pad.
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            dilation=dilation,
            padding=self.pad[0] if symmetric else 0,
        )
        self._explicit_pad = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T / stride)
        if self._explicit_pad:
            x = F.pad(x, self.pad)
        return super().forward(x)


class ResBlock(nn.Module):
    """Pre-activation residual block: norm, act, dilated k=3 conv, norm, act, 1x1 conv."""

    def __init__(self, width: int, dilation: int, activation: str, norm: str, causal: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            make_norm(norm, width, causal),
            make_activation(activation),
            PaddedConv1d(width, width, 3, dilation=dilation, causal=causal),
            make_norm(norm, width, causal),
            make_activation(activation),
            PaddedConv1d(width, width, 1, causal=causal),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, T)
        return x + self.body(x)


def res_stack(width: int, depth: int, growth: int, activation: str, norm: str, causal: bool) -> nn.Sequential:
    """``depth`` residual blocks with dilations growth**(depth-1) ... 1 (widest receptive field first)."""
    dilations = [growth**i for i in reversed(range(depth))]
    return nn.Sequential(*(ResBlock(width, d, activation, norm, causal) for d in dilations))


def _check_args(**ints: int) -> None:
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
        minimum = 0 if name == "down_t" else 1
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


class _ConvStack(nn.Module):
    """Shared constructor of the encoder and decoder: validated arguments -> ``self.net``."""

    def __init__(
        self,
        *,
        in_dim: int,
        width: int,
        depth: int,
        down_t: int,
        stride_t: int,
        dilation_growth_rate: int,
        output_emb_width: int,
        activation: str = "relu",
        norm: str = "none",
        causal: bool = False,
    ) -> None:
        super().__init__()
        _check_args(
            in_dim=in_dim,
            width=width,
            depth=depth,
            down_t=down_t,
            stride_t=stride_t,
            dilation_growth_rate=dilation_growth_rate,
            output_emb_width=output_emb_width,
        )
        layers = self._layers(
            in_dim,
            width,
            depth,
            down_t,
            stride_t,
            dilation_growth_rate,
            output_emb_width,
            activation,
            norm,
            causal,
        )
        self.net = nn.Sequential(*layers)

    def _layers(
        self,
        in_dim: int,
        width: int,
        depth: int,
        down_t: int,
        stride_t: int,
        growth: int,
        emb: int,
        activation: str,
        norm: str,
        causal: bool,
    ) -> list[nn.Module]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Encoder(_ConvStack):
    """(B, in_dim, T) features -> (B, output_emb_width, T / stride_t**down_t) latents."""

    def _layers(
        self,
        in_dim: int,
        width: int,
        depth: int,
        down_t: int,
        stride_t: int,
        growth: int,
        emb: int,
        activation: str,
        norm: str,
        causal: bool,
    ) -> list[nn.Module]:
        layers: list[nn.Module] = [PaddedConv1d(in_dim, width, 3, causal=causal), make_activation(activation)]
        for _ in range(down_t):
            # Kernel 2*stride: each output sees its own stride block plus the previous one.
            layers.append(PaddedConv1d(width, width, 2 * stride_t, stride=stride_t, causal=causal))
            layers.append(res_stack(width, depth, growth, activation, norm, causal))
        layers.append(PaddedConv1d(width, emb, 3, causal=causal))
        return layers


class Decoder(_ConvStack):
    """(B, output_emb_width, T') latents -> (B, in_dim, T' * stride_t**down_t) features.

    Upsampling is nearest-neighbour (ONNX ``Resize``) followed by a conv, so a causal decoder never
    lets token k influence frames before k * frames_per_token.
    """

    def _layers(
        self,
        in_dim: int,
        width: int,
        depth: int,
        down_t: int,
        stride_t: int,
        growth: int,
        emb: int,
        activation: str,
        norm: str,
        causal: bool,
    ) -> list[nn.Module]:
        layers: list[nn.Module] = [PaddedConv1d(emb, width, 3, causal=causal), make_activation(activation)]
        for _ in range(down_t):
            layers.append(res_stack(width, depth, growth, activation, norm, causal))
            layers.append(nn.Upsample(scale_factor=stride_t, mode="nearest"))
            layers.append(PaddedConv1d(width, width, 3, causal=causal))
        layers += [
            PaddedConv1d(width, width, 3, causal=causal),
            make_activation(activation),
            PaddedConv1d(width, in_dim, 3, causal=causal),
        ]
        return layers
