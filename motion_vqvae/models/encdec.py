"""Conv1d encoder and decoder: dilated residual stacks around ``down_t`` stride-``stride_t`` stages.

Every convolution is a :class:`PaddedConv1d`, which pads explicitly instead of relying on
``nn.Conv1d(padding=...)``. In causal mode it pads on the left only, so nothing looks ahead and each conv
has a known left ``context`` (frames of past input it needs); a streaming decoder can later cache exactly
that many inputs per conv and run one token per call. Non-causal mode pads symmetrically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

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


@dataclass(frozen=True)
class StackSpec:
    """The encoder's and decoder's shared hyper-parameters, validated once on construction."""

    in_dim: int
    width: int
    depth: int
    down_t: int
    stride_t: int
    dilation_growth_rate: int
    output_emb_width: int
    activation: str = "relu"
    norm: str = "none"
    causal: bool = False

    def __post_init__(self) -> None:
        for f in fields(self)[:7]:  # the integer sizes
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{f.name} must be an int, got {type(value).__name__} ({value!r})")
            minimum = 0 if f.name == "down_t" else 1
            if value < minimum:
                raise ValueError(f"{f.name} must be >= {minimum}, got {value}")

    def res_stack(self) -> nn.Sequential:
        return res_stack(
            self.width, self.depth, self.dilation_growth_rate, self.activation, self.norm, self.causal
        )

    def conv(self, c_in: int, c_out: int, kernel: int, **kw: int) -> PaddedConv1d:
        return PaddedConv1d(c_in, c_out, kernel, causal=self.causal, **kw)


class _ConvStack(nn.Module):
    """Shared constructor of the encoder and decoder: ``StackSpec`` keywords -> ``self.net``."""

    def __init__(self, **spec: object) -> None:
        super().__init__()
        self.net = nn.Sequential(*self._layers(StackSpec(**spec)))  # type: ignore[arg-type]

    def _layers(self, s: StackSpec) -> list[nn.Module]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Encoder(_ConvStack):
    """(B, in_dim, T) features -> (B, output_emb_width, T / stride_t**down_t) latents."""

    def _layers(self, s: StackSpec) -> list[nn.Module]:
        layers: list[nn.Module] = [s.conv(s.in_dim, s.width, 3), make_activation(s.activation)]
        for _ in range(s.down_t):
            # Kernel 2*stride: each output sees its own stride block plus the previous one.
            layers += [s.conv(s.width, s.width, 2 * s.stride_t, stride=s.stride_t), s.res_stack()]
        layers.append(s.conv(s.width, s.output_emb_width, 3))
        return layers


class Decoder(_ConvStack):
    """(B, output_emb_width, T') latents -> (B, in_dim, T' * stride_t**down_t) features.

    Upsampling is nearest-neighbour followed by a conv, so a causal decoder never lets token k influence
    frames before k * frames_per_token.
    """

    def _layers(self, s: StackSpec) -> list[nn.Module]:
        layers: list[nn.Module] = [s.conv(s.output_emb_width, s.width, 3), make_activation(s.activation)]
        for _ in range(s.down_t):
            layers += [s.res_stack(), nn.Upsample(scale_factor=s.stride_t, mode="nearest")]
            layers.append(s.conv(s.width, s.width, 3))
        layers += [s.conv(s.width, s.width, 3), make_activation(s.activation), s.conv(s.width, s.in_dim, 3)]
        return layers
