"""Token decoding for many environments at once, in torch on the simulator's device.

``BatchedTokenDecoder`` keeps one :class:`~motion_vqvae.export.streaming.StreamingDecoder` state row per
environment: ``step(tokens[num_envs])`` returns ``[num_envs, frames_per_token, dof]`` joint position
targets (simulator order, clamped to the joint limits) and ``reset(env_ids)`` zeroes the rows of the
environments that started a new episode, so each row decodes exactly as a single-environment decoder
would. Targets come from the export's :class:`~motion_vqvae.export.targets.JointTargetHead` (identity
joint map), the same arithmetic the ONNX files run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from motion_vqvae.export.streaming import State, StreamingDecoder
from motion_vqvae.export.targets import JointTargetHead
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.vqvae import VQVAE
from sim2real import JointMap


class BatchedTokenDecoder:
    """``step(tokens[num_envs]) -> targets[num_envs, frames_per_token, dof]``; ``reset(env_ids)``."""

    def __init__(
        self,
        model: VQVAE,
        layout: FeatureLayout,
        num_envs: int,
        lower: np.ndarray,
        upper: np.ndarray,
        device: str | torch.device = "cpu",
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"BatchedTokenDecoder: num_envs must be a positive int, got {num_envs!r}")
        self.device = torch.device(device)
        self.num_envs = num_envs
        self.streaming = StreamingDecoder(model).to(self.device).eval()
        identity = JointMap.identity(layout.num_dof, layout.joint_names)
        self.head = JointTargetHead(layout, identity, lower, upper).to(self.device).eval()
        self.nb_code = self.streaming.nb_code
        self.frames_per_token = self.streaming.frames_per_token
        self.num_dof = layout.num_dof
        self.state: State = self.streaming.init_state(num_envs, self.device)
        # De-normalized root features (height, tilt, local velocity, yaw rate) of the latest step.
        self.last_root = torch.zeros(num_envs, self.frames_per_token, self.head.root_dim, device=self.device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, num_envs: int, device: str | torch.device = "cpu"
    ) -> BatchedTokenDecoder:
        """Decoder of a trained checkpoint, limits from its robot description (simulator order)."""
        from motion_vqvae.agent import MVQVAEAgent
        from sim2real import load_robot

        agent = MVQVAEAgent.from_checkpoint(path, device="cpu")
        lower, upper, _ = load_robot(agent.cfg.robot).sim_limits()
        names = agent.layout.joint_names
        robot_names = list(load_robot(agent.cfg.robot).sim_joint_names)
        if names and names != robot_names:
            raise ValueError(
                f"{path}: the model's joint order {names[:3]}... differs from robot '{agent.cfg.robot}' "
                f"sim order {robot_names[:3]}...; retrain in simulator order"
            )
        return cls(agent.model, agent.layout, num_envs, lower, upper, device)

    def reset(self, env_ids: torch.Tensor | np.ndarray | list[int] | None = None) -> None:
        """Start new token sequences for ``env_ids`` (indices or a bool mask; None = all environments)."""
        if env_ids is None:
            self.state = self.streaming.init_state(self.num_envs, self.device)
            return
        rows = torch.as_tensor(env_ids, device=self.device)
        if rows.dtype != torch.bool:
            rows = rows.long()
            if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.num_envs):
                raise ValueError(
                    f"BatchedTokenDecoder.reset: env_ids must lie in [0, {self.num_envs}), "
                    f"got range [{int(rows.min())}, {int(rows.max())}]"
                )
        self.state = self.streaming.reset_rows(self.state, rows)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor | np.ndarray) -> torch.Tensor:
        """One token per environment (int ``[num_envs]``) -> targets ``[num_envs, fpt, dof]`` float32."""
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.shape != (self.num_envs,) or tokens.dtype.is_floating_point:
            raise ValueError(
                f"BatchedTokenDecoder.step: tokens must be integer ids of shape ({self.num_envs},), "
                f"got {tokens.dtype} {tuple(tokens.shape)}"
            )
        tokens = tokens.long()
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.nb_code:
            raise ValueError(
                f"BatchedTokenDecoder.step: token ids must lie in [0, {self.nb_code - 1}], "
                f"got range [{int(tokens.min())}, {int(tokens.max())}]"
            )
        frames, self.state = self.streaming.step(tokens, self.state)  # (N, fpt, F) normalized
        targets, self.last_root = self.head(frames)
        return targets
