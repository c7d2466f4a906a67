"""``motion_vqvae/G1Kinematic-v0``: a kinematic G1 driven by whole motion frames, tracking a velocity command.

The action is one frame in :class:`~motion_vqvae.features.FeatureLayout` terms (exp-map tilt): root
height, tilt, root velocity in the heading frame, yaw rate, joint angles and joint velocities. The root is
integrated from the velocities exactly as :meth:`FeatureLayout.to_motion` does, so a stream of decoded
token frames travels where the tokens say. MuJoCo runs forward kinematics only (for rendering): no dynamics,
no falling, which makes it a fast test bed for the token vocabulary itself.

Task: match a planar velocity and yaw-rate command given in the heading frame, resampled every
``command_period_s``: uniform in ``±(max_lin_speed, max_yaw_rate)``, or drawn from the rows of
``commands`` (e.g. the velocities a token vocabulary can reach). The per-step reward is a Gaussian
kernel of the tracking error in [0, 1], so returns of two policies compare as ratios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from motion_vqvae.envs.g1 import G1Body, check_finite_action, proprio_observation, proprio_size
from motion_vqvae.envs.render import G1Renderer, RendersG1
from motion_vqvae.errors import InvalidValue
from motion_vqvae.features import FeatureLayout
from motion_vqvae.rotations import expmap_to_quat, quat_from_yaw, quat_mul

# Bounds of the frame action per feature group (dof_pos uses the joint limits instead).
_FRAME_BOUNDS = {
    "root_height": 1.5,  # m (lower bound 0)
    "root_tilt": np.pi,  # rad
    "root_lin_vel": 5.0,  # m/s
    "yaw_rate": 10.0,  # rad/s
    "dof_vel": 50.0,  # rad/s
}


class G1KinematicEnv(RendersG1, gym.Env[np.ndarray, np.ndarray]):
    """Kinematic G1 following a velocity command; the action is a whole motion frame."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    action_format = "motion_frame"

    def __init__(
        self,
        fps: float = 30.0,
        command_period_s: float = 3.0,
        max_lin_speed: tuple[float, float] = (0.4, 0.3),
        max_yaw_rate: float = 1.0,
        lin_sigma: float = 0.2,
        yaw_sigma: float = 0.4,
        commands: np.ndarray | None = None,
        mjcf: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        for name, value in (
            ("fps", fps),
            ("command_period_s", command_period_s),
            ("lin_sigma", lin_sigma),
            ("yaw_sigma", yaw_sigma),
        ):
            if not value > 0:
                raise InvalidValue(f"G1Kinematic: {name} must be positive, got {value}")
        if render_mode not in (None, "rgb_array"):
            raise InvalidValue(f"G1Kinematic: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.fps = self.control_fps = float(fps)
        self.metadata = {**self.metadata, "render_fps": self.fps}
        self.command_period = max(1, round(command_period_s * self.fps))
        self.max_command = np.array([*max_lin_speed, max_yaw_rate], dtype=np.float64)
        self.commands = None if commands is None else np.asarray(commands, dtype=np.float64)
        if self.commands is not None and (self.commands.ndim != 2 or self.commands.shape[1] != 3):
            raise InvalidValue(
                "G1Kinematic: commands must be rows of (vx, vy, yaw_rate), shape (K, 3); "
                f"got {self.commands.shape}"
            )
        self.sigmas = (float(lin_sigma), float(yaw_sigma))
        self.render_mode = render_mode
        self.body = G1Body(mjcf)
        self.layout = FeatureLayout(self.body.num_dof, prefer_expmap=True, joint_names=self.body.joint_names)
        low, high = np.empty(self.layout.dim), np.empty(self.layout.dim)
        for group, sl in self.layout.slices.items():
            if group == "dof_pos":
                low[sl], high[sl] = self.body.lower, self.body.upper
            else:
                high[sl] = _FRAME_BOUNDS[group]
                low[sl] = 0.0 if group == "root_height" else -_FRAME_BOUNDS[group]
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._action_names = [""] * self.layout.dim  # what each entry is, for errors
        for group, sl in self.layout.slices.items():
            per_joint = group in ("dof_pos", "dof_vel")
            size = len(range(self.layout.dim)[sl])
            self._action_names[sl] = (
                [f"{name} {group}" for name in self.body.joint_names]
                if per_joint
                else [f"{group}[{k}]" for k in range(size)]
            )
        obs_dim = proprio_size(self.body.num_dof) + 3
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), dtype=np.float32)
        self._stand = self.body.stand_pose()
        self._stand_height = self.body.standing_height(self._stand)
        self._renderer: G1Renderer | None = None
        self._pos = np.zeros(3)
        self._yaw = 0.0
        self._frame = np.zeros(self.layout.dim)
        self.command = np.zeros(3)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos = np.array([0.0, 0.0, self._stand_height])
        self._yaw = float(self.np_random.uniform(-np.pi, np.pi))
        self._frame = np.zeros(self.layout.dim)
        self._frame[self.layout.slices["root_height"]] = self._stand_height
        self._frame[self.layout.slices["dof_pos"]] = self._stand
        self._steps = 0
        self._resample_command()
        self._place(self._frame)
        return self._observation(), {"command": self.command.copy()}

    def joint_positions(self) -> np.ndarray:
        """The measured joint angles (simulator order, rad): where a token decoder starts at reset."""
        return self.body.joint_positions()

    def step(self, action: np.ndarray):
        frame = np.asarray(action, dtype=np.float64)
        if frame.shape != self.action_space.shape:
            raise ValueError(
                f"G1Kinematic: action must be one motion frame of shape {self.action_space.shape} "
                f"(FeatureLayout with exp-map tilt), got {frame.shape}"
            )
        check_finite_action("G1Kinematic", frame, self._action_names)
        frame = np.clip(frame, self.action_space.low, self.action_space.high)
        self._frame = frame
        self._place(frame)
        s = self.layout.slices
        lin_vel, yaw_rate = frame[s["root_lin_vel"]], float(frame[s["yaw_rate"]][0])
        reward = self.tracking_reward(lin_vel[:2], yaw_rate)
        # Integrate to the next frame as FeatureLayout.to_motion does: velocities of frame t move t -> t+1.
        c, sn = np.cos(self._yaw), np.sin(self._yaw)
        self._pos[:2] += (
            np.array([c * lin_vel[0] - sn * lin_vel[1], sn * lin_vel[0] + c * lin_vel[1]]) / self.fps
        )
        self._yaw += yaw_rate / self.fps
        self._steps += 1
        if self._steps % self.command_period == 0:
            self._resample_command()
        info = {"command": self.command.copy(), "tracking_reward": reward}
        return self._observation(), reward, False, False, info

    def tracking_reward(self, lin_vel_xy: np.ndarray, yaw_rate: float) -> float:
        """exp(-|v - v*|^2 / s_v^2 - (w - w*)^2 / s_w^2): 1 on the command, ~0 far from it."""
        lin_err = float(np.sum((lin_vel_xy - self.command[:2]) ** 2))
        yaw_err = (yaw_rate - float(self.command[2])) ** 2
        return float(np.exp(-lin_err / self.sigmas[0] ** 2 - yaw_err / self.sigmas[1] ** 2))

    def _resample_command(self) -> None:
        if self.commands is not None:
            self.command = self.commands[self.np_random.integers(len(self.commands))].copy()
        else:
            self.command = self.np_random.uniform(-self.max_command, self.max_command)

    def _place(self, frame: np.ndarray) -> None:
        """Pose the MuJoCo body at the current root position/heading with the frame's tilt and joints."""
        s = self.layout.slices
        self._pos[2] = frame[s["root_height"]][0]
        quat = quat_mul(quat_from_yaw(np.array(self._yaw)), expmap_to_quat(frame[s["root_tilt"]]))
        self.body.set_pose(self._pos, quat, frame[s["dof_pos"]])
        mujoco.mj_kinematics(self.body.model, self.body.data)

    def _observation(self) -> np.ndarray:
        s, f = self.layout.slices, self._frame
        proprio = proprio_observation(
            f[s["root_height"]][0],
            f[s["root_tilt"]],
            f[s["root_lin_vel"]],
            f[s["yaw_rate"]][0],
            f[s["dof_pos"]],
            f[s["dof_vel"]],
        )
        return np.concatenate([proprio, self.command.astype(np.float32)])
