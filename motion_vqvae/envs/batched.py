"""Token decoding for many environments at once, in torch on the simulator's device.

``BatchedTokenDecoder`` keeps one :class:`~motion_vqvae.export.streaming.StreamingDecoder` state row per
environment: ``step(tokens)`` takes one token per environment, ``[num_envs]`` for a one-stream tokenizer or
``[num_envs, S]`` for a multi-level one (the token structure is the checkpoint's
:class:`~sim2real.token_spec.TokenSpec`), and returns ``[num_envs, frames_per_token, dof]`` joint position
targets in simulator order. Targets come from the export's
:class:`~motion_vqvae.export.targets.JointTargetHead` (identity joint map), the arithmetic the ONNX files
run, and then pass the :class:`~motion_vqvae.envs.safety.TorchSafetyFilter` with the limits the robot
runtime enforces. ``reset(env_ids, current=q)`` starts new sequences from the simulator's joint positions:
stepping an environment whose pose was never given is an error, as on the robot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from motion_vqvae.envs.safety import TorchSafetyFilter, sim_joint_limits
from motion_vqvae.errors import InvalidValue
from motion_vqvae.export.streaming import State, StreamingDecoder
from motion_vqvae.export.targets import JointTargetHead
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.vqvae import VQVAE
from sim2real import JointMap, SafetyLimits
from sim2real.token_spec import TokenSpec

if TYPE_CHECKING:
    from motion_vqvae.tokenizer import Tokenizer


class BatchedTokenDecoder:
    """``step(tokens[num_envs(, S)]) -> targets[num_envs, fpt, dof]``; ``reset(env_ids, current)``."""

    def __init__(
        self,
        model: VQVAE,
        layout: FeatureLayout,
        num_envs: int,
        limits: SafetyLimits,
        device: str | torch.device = "cpu",
        levels: int | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise InvalidValue(f"BatchedTokenDecoder: num_envs must be a positive int, got {num_envs!r}")
        self.device = torch.device(device)
        self.num_envs = num_envs
        self.spec: TokenSpec = model.token_spec  # the checkpoint's token structure (checked on load)
        self.streaming = StreamingDecoder(model, levels).to(self.device).eval()
        self.levels = self.spec.num_levels if levels is None else self.spec.check_levels(levels)
        identity = JointMap.identity(layout.num_dof, layout.joint_names)
        self.head = JointTargetHead(layout, identity, limits.lower, limits.upper).to(self.device).eval()
        self.frames_per_token = self.spec.frames_per_token
        self.num_dof = layout.num_dof
        self.state: State = self.streaming.init_state(num_envs, self.device)
        if limits.fps != self.spec.fps:
            raise InvalidValue(f"limits are for {limits.fps} fps, the tokenizer's motion {self.spec.fps} fps")
        self.filter = TorchSafetyFilter(limits, num_envs, self.device)
        # De-normalized root features (height, tilt, local velocity, yaw rate) of the latest step.
        self.last_root = torch.zeros(num_envs, self.frames_per_token, self.head.root_dim, device=self.device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, num_envs: int, device: str | torch.device = "cpu", levels: int | None = None
    ) -> BatchedTokenDecoder:
        """Decoder of a checkpoint file (loaded once as a :class:`~motion_vqvae.tokenizer.Tokenizer`)."""
        from motion_vqvae.tokenizer import Tokenizer

        return cls.from_tokenizer(Tokenizer.load(path), num_envs, device, levels)

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Tokenizer,
        num_envs: int,
        device: str | torch.device = "cpu",
        levels: int | None = None,
    ) -> BatchedTokenDecoder:
        """Decoder of a loaded tokenizer (its joint order is the robot's simulator order, checked at load);
        limits are the robot runtime's for its robot (simulator order). ``levels=K`` decodes the first K
        quantizer levels of every part only (finer levels add zero)."""
        limits = sim_joint_limits(tokenizer.config.robot, tokenizer.fps)
        return cls(tokenizer.model, tokenizer.layout, num_envs, limits, device, levels)

    @property
    def interventions(self) -> dict[str, torch.Tensor]:
        """What the safety filter changed per environment since construction: ``[num_envs]`` int64 counts
        by kind, as the robot runtime's ``TokenDecoder.interventions`` counts for one robot."""
        return self.filter.interventions

    def _rows(self, env_ids: torch.Tensor | np.ndarray | list[int] | None) -> torch.Tensor:
        if env_ids is None:
            return torch.arange(self.num_envs, device=self.device)
        rows = torch.as_tensor(env_ids, device=self.device)
        if rows.dtype == torch.bool:
            if rows.shape != (self.num_envs,):
                raise ValueError(f"BatchedTokenDecoder.reset: a mask must have shape ({self.num_envs},)")
            return torch.nonzero(rows).flatten()
        rows = rows.long().flatten()
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.num_envs):
            raise ValueError(
                f"BatchedTokenDecoder.reset: env_ids must lie in [0, {self.num_envs}), "
                f"got range [{int(rows.min())}, {int(rows.max())}]"
            )
        return rows

    def reset(
        self,
        env_ids: torch.Tensor | np.ndarray | list[int] | None = None,
        current: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Start new token sequences for ``env_ids`` (indices or a bool mask; None = all environments).

        ``current`` ``[len(env_ids), dof]`` (simulator order, rad) is where those robots stand now: their
        targets ramp from it. Without it the rows wait for a pose and ``step`` raises.
        """
        rows = self._rows(env_ids)
        self.state = self.streaming.reset_rows(self.state, rows)
        if isinstance(current, np.ndarray):
            current = np.array(current, np.float32)  # a writable copy (the caller's may be a broadcast view)
        pose = None if current is None else torch.as_tensor(current, dtype=torch.float32, device=self.device)
        self.filter.reset(rows, pose)

    @torch.no_grad()  # not inference_mode: the filter's state must stay writable by reset()
    def step(self, tokens: torch.Tensor | np.ndarray) -> torch.Tensor:
        """One token per environment -> safe targets ``[num_envs, fpt, dof]`` float32."""
        tokens = torch.as_tensor(tokens, device=self.device)
        expected = (self.num_envs,) if self.spec.is_single else (self.num_envs, self.spec.num_streams)
        if tuple(tokens.shape) != expected:
            raise ValueError(
                f"BatchedTokenDecoder.step: tokens must have shape {expected} (streams "
                f"{list(self.spec.stream_names)}), got {tuple(tokens.shape)}"
            )
        self.spec.check_tokens(tokens.cpu().numpy())  # integer ids inside every stream's vocabulary
        frames, self.state = self.streaming.step(tokens.long(), self.state)  # (N, fpt, F) normalized
        targets, self.last_root = self.head(frames)
        return self.filter(targets)
