"""Constant-time, token-by-token decoding of a causal VQ-VAE decoder in pure torch.

A causal :class:`~motion_vqvae.models.encdec.PaddedConv1d` output depends on its current input frames and
the ``context`` frames before them. :class:`StreamingDecoder` keeps exactly those past inputs per conv (at
that conv's frame rate) as explicit state tensors, so one call turns one token per batch row into
``frames_per_token`` feature frames, and the outputs equal the whole-sequence decoder's. The state is a
flat tuple of tensors: it exports to ONNX as plain inputs/outputs and batches across environments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from motion_vqvae.models.encdec import ChannelLayerNorm, PaddedConv1d, ResBlock
from motion_vqvae.models.vqvae import VQVAE

# Modules that act on each frame independently (or, for nearest upsampling, on each frame's copies):
# running them on a chunk equals running them on the whole sequence.
_FRAMEWISE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Identity, ChannelLayerNorm, nn.Upsample)

State = tuple[torch.Tensor, ...]


class StreamingDecoder(nn.Module):
    """One token per call: ``step(tokens[B], state) -> (frames[B, fpt, F], new_state)``.

    ``frames`` are **normalized** features (the model's output space, as ``VQVAE.decode`` returns); use
    :class:`~motion_vqvae.export.targets.JointTargetHead` for joint targets. ``state[i]`` is
    ``(B, C_in, context)`` for the i-th conv with a non-zero left context, zeros after :meth:`init_state`
    (the zero padding the whole-sequence decoder sees before frame 0). Shares the model's weights.
    """

    def __init__(self, model: VQVAE) -> None:
        super().__init__()
        if not model.causal:
            raise ValueError(
                "StreamingDecoder needs a causal model (causal: true); a non-causal decoder looks at future "
                "tokens and has no constant-time step form; decode whole sequences instead"
            )
        self.quantizer = model.quantizer
        self.net = model.decoder.net
        self.frames_per_token = model.frames_per_token
        self.nb_code = model.quantizer.nb_code
        self._convs: list[PaddedConv1d] = []
        self._collect(self.net)
        self._shapes: list[tuple[int, int]] = [(c.in_channels, c.context) for c in self._convs]

    def _collect(self, module: nn.Module) -> None:
        """Walk the decoder once, checking every module has a known streaming form, and list its convs."""
        if isinstance(module, nn.Sequential):
            for child in module:
                self._collect(child)
        elif isinstance(module, ResBlock):
            self._collect(module.body)
        elif isinstance(module, PaddedConv1d):
            if module.stride != (1,):
                raise ValueError(f"StreamingDecoder: strided conv {module} has no one-token step form")
            if module.context:
                self._convs.append(module)
        elif not isinstance(module, _FRAMEWISE):
            raise TypeError(
                f"StreamingDecoder: no streaming rule for {type(module).__name__}; add one in "
                "motion_vqvae/export/streaming.py"
            )

    @property
    def state_shapes(self) -> list[tuple[int, int]]:
        """``(channels, context)`` of each state tensor, in order (the batch axis comes first)."""
        return list(self._shapes)

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero state for ``batch`` rows: the decoder before its first token."""
        device = device if device is not None else self.quantizer.codebook.device
        return tuple(torch.zeros(batch, c, k, device=device) for c, k in self._shapes)

    def reset_rows(self, state: State, rows: torch.Tensor) -> State:
        """State with the given batch rows (bool mask ``[B]`` or indices) back to zero; others untouched."""
        out = []
        for s in state:
            s = s.clone()
            s[rows] = 0.0
            out.append(s)
        return tuple(out)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Decode one token per row: ``tokens`` int64 ``[B]`` -> normalized frames ``[B, fpt, F]``."""
        if tokens.dim() != 1:
            raise ValueError(f"StreamingDecoder.step: tokens must be [B], got shape {tuple(tokens.shape)}")
        if len(state) != len(self._shapes):
            raise ValueError(
                f"StreamingDecoder.step: expected {len(self._shapes)} state tensors, got {len(state)}"
            )
        out = self.forward(tokens, *state)
        return out[0], tuple(out[1:])

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """ONNX-friendly form of :meth:`step`: ``(frames, *new_state)``."""
        x = self.quantizer.dequantize(tokens[:, None])  # (B, D, 1)
        new_state: list[torch.Tensor] = []
        x = self._run(self.net, x, list(state), new_state)
        return (x.transpose(1, 2), *new_state)  # (B, fpt, F)

    def _run(
        self, module: nn.Module, x: torch.Tensor, state: list[torch.Tensor], new_state: list[torch.Tensor]
    ) -> torch.Tensor:  # (B, C, n) -> (B, C', n') at this point's frame rate
        if isinstance(module, nn.Sequential):
            for child in module:
                x = self._run(child, x, state, new_state)
            return x
        if isinstance(module, ResBlock):
            return x + self._run(module.body, x, state, new_state)
        if isinstance(module, PaddedConv1d):
            if not module.context:
                return F.conv1d(x, module.weight, module.bias)
            past = state[len(new_state)]  # (B, C_in, context)
            window = torch.cat([past, x], dim=2)  # (B, C_in, context + n)
            new_state.append(window[:, :, -module.context :])
            return F.conv1d(window, module.weight, module.bias, dilation=module.dilation)
        return module(x)
