"""The torch modules behind each ONNX file of a tokenizer export, built from one tokenizer.

They live apart from the writer (:mod:`motion_vqvae.export.onnx_export`) because the manifest and the parity
checks read them too: all three import this module, none imports another's caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from motion_vqvae.errors import user_input
from motion_vqvae.export.source import ExportSource
from motion_vqvae.export.streaming import StreamingDecoder
from motion_vqvae.export.targets import JointTargetHead, real_limits
from motion_vqvae.models.vqvae import VQVAE
from sim2real import JointMap, RobotDescription, SafetyLimits, TokenSpec
from sim2real.hardware import resolve_robot
from sim2real.safety import limits_for_robot


class SequenceDecoder(nn.Module):
    """``decoder.onnx``: tokens int64 ``[B, T]`` (one stream) or ``[B, T, S]`` -> (targets
    ``[B, T*fpt, dof]``, root ``[B, T*fpt, R]``)."""

    def __init__(self, model: VQVAE, head: JointTargetHead) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # model.decode's range check reads values into Python: fine eagerly, a baked constant when traced.
        features = self.model.decode_latents(self.model.quantizer.dequantize(tokens))  # (B, T*fpt, F)
        return self.head(features)


class StepDecoder(nn.Module):
    """``decoder_step.onnx``: (tokens ``[B]`` or ``[B, S]``, *state) -> (targets ``[B, fpt, dof]``, root,
    *new_state)."""

    def __init__(self, streaming: StreamingDecoder, head: JointTargetHead) -> None:
        super().__init__()
        self.streaming, self.head = streaming, head

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames, *new_state = self.streaming(tokens, *state)
        return (*self.head(frames), *new_state)


class TokenEncoder(nn.Module):
    """``encoder.onnx``: normalized frames ``[B, T*fpt, F]`` -> token ids int64 ``[B, T]``/``[B, T, S]``."""

    def __init__(self, model: VQVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.lookup(self.model.encoder(frames.transpose(1, 2)))


@dataclass
class ExportModules:
    """The torch modules behind each ONNX file, built from one tokenizer (also used by the parity checks)."""

    tokenizer: ExportSource
    robot: RobotDescription  # the training config's robot: a packaged one, or a file restricting one
    joint_map: JointMap
    token_spec: TokenSpec
    limits: SafetyLimits  # what the robot's safety filter enforces (real order), after safety_scale
    safety_scale: float
    head: JointTargetHead
    decoder: SequenceDecoder
    encoder: TokenEncoder
    step: StepDecoder | None  # None for a non-causal model

    @classmethod
    def from_tokenizer(cls, tokenizer: ExportSource, safety_scale: float = 1.0) -> ExportModules:
        """Modules for ``tokenizer`` (on the CPU); the decoders clamp to the filter's position limits."""
        model, layout, joint_map = tokenizer.model.cpu(), tokenizer.layout, tokenizer.joint_map
        with user_input():  # sim2real refuses a robot file that widens the packaged robot with builtins
            robot = resolve_robot(tokenizer.config.robot)
        spec = tokenizer.spec  # the checkpoint's token structure, fps included
        limits = limits_for_robot(real_limits(robot, joint_map), robot.safety, spec.fps, safety_scale)
        head = JointTargetHead(layout, joint_map, limits.lower, limits.upper).eval()
        step = StepDecoder(StreamingDecoder(model), head).eval() if model.causal else None
        return cls(
            tokenizer,
            robot,
            joint_map,
            spec,
            limits,
            safety_scale,
            head,
            SequenceDecoder(model, head),
            TokenEncoder(model),
            step,
        )
