"""``motion_vqvae/G1PD-v0``: the G1 in MuJoCo physics under a PD law on joint position targets.

The shipped model has plain torque motors, so the environment closes the loop itself: at every physics
step ``tau = kp (q* - q) - kd dq``, clipped to the model's joint torque limits. Physics runs at
``physics_hz`` (200 Hz) and the policy at ``control_fps`` (the motion fps, 30 Hz); when the ratio is not an
integer the substep count alternates (6, 7, 7, ...) so both rates hold exactly on average.

The episode starts from a bent-knee stand (the all-zero pose tips over under PD) and ends when the pelvis
drops below ``min_height`` or the simulation diverges (MuJoCo then resets itself to its initial pose, which
would otherwise read as a healthy robot); a terminated episode stays terminated until ``reset()``. A
non-finite action is refused (ValueError naming the joint). ``root_support`` (N/m) adds springs on the
pelvis height and orientation through ``xfrc_applied``, critically damped by the free joint's damping: with
it a motion prior can be watched without the balance problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from motion_vqvae.envs.g1 import (
    G1Body,
    check_finite_action,
    heading_frame_state,
    proprio_observation,
    proprio_size,
)
from motion_vqvae.envs.render import G1Renderer, RendersG1
from motion_vqvae.errors import InvalidValue
from motion_vqvae.rotations import quat_rotate

# (kp N m/rad, kd N m s/rad) by joint-name fragment, first match wins. unitree_rl_gym's G1 gains, except
# stiffer ankles: without a balancing policy the legs are an inverted pendulum, and the series compliance of
# hip, knee and ankle at kp 40 lets it topple in ~1 s (kp 400 stands still; the 50 N m torque limit holds).
DEFAULT_GAINS: tuple[tuple[str, float, float], ...] = (
    ("knee", 150.0, 4.0),
    ("hip", 100.0, 2.5),
    ("ankle", 400.0, 5.0),
    ("waist", 200.0, 5.0),
    ("shoulder", 40.0, 1.0),
    ("elbow", 40.0, 1.0),
    ("wrist", 20.0, 0.5),
)


def joint_gains(joint_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint ``(kp, kd)`` from :data:`DEFAULT_GAINS`; a joint no fragment matches is an error."""
    kp, kd = np.empty(len(joint_names)), np.empty(len(joint_names))
    for i, name in enumerate(joint_names):
        match = next((g for g in DEFAULT_GAINS if g[0] in name), None)
        if match is None:
            raise InvalidValue(
                f"G1PD: no default gains for joint '{name}'; pass kp and kd arrays (one value per joint)"
            )
        kp[i], kd[i] = match[1], match[2]
    return kp, kd


class G1PDEnv(RendersG1, gym.Env[np.ndarray, np.ndarray]):
    """Physics G1 on PD joint-position control; reward alive + upright."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    action_format = "joint_targets_sim"

    def __init__(
        self,
        control_fps: float = 30.0,
        physics_hz: float = 200.0,
        kp: np.ndarray | None = None,
        kd: np.ndarray | None = None,
        min_height: float = 0.4,
        root_support: float = 0.0,
        reset_noise: float = 0.02,
        mjcf: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        if not control_fps > 0 or not physics_hz >= control_fps:
            raise InvalidValue(
                f"G1PD: need physics_hz >= control_fps > 0, got physics_hz={physics_hz}, "
                f"control_fps={control_fps}"
            )
        if root_support < 0 or reset_noise < 0:
            raise InvalidValue(
                f"G1PD: root_support and reset_noise must be >= 0, got {root_support}, {reset_noise}"
            )
        if render_mode not in (None, "rgb_array"):
            raise InvalidValue(f"G1PD: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.control_fps, self.physics_hz = float(control_fps), float(physics_hz)
        self.metadata = {**self.metadata, "render_fps": self.control_fps}
        self.render_mode = render_mode
        self.body = G1Body(mjcf, timestep=1.0 / self.physics_hz)
        n = self.body.num_dof
        default_kp, default_kd = joint_gains(self.body.joint_names) if kp is None or kd is None else (kp, kd)
        self.kp = np.broadcast_to(np.asarray(kp if kp is not None else default_kp, dtype=np.float64), (n,))
        self.kd = np.broadcast_to(np.asarray(kd if kd is not None else default_kd, dtype=np.float64), (n,))
        self.min_height = float(min_height)
        self.root_support = float(root_support)
        self.reset_noise = float(reset_noise)
        self.action_space = gym.spaces.Box(
            self.body.lower.astype(np.float32), self.body.upper.astype(np.float32), dtype=np.float32
        )
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (proprio_size(n),), dtype=np.float32)
        self.stand_pose = self.body.stand_pose()
        self._stand_height = self.body.standing_height(self.stand_pose)
        self._mass = float(self.body.model.body_subtreemass[self.body.root_body])
        if self.root_support > 0:
            # The support's dampers live in the model (free-joint dof_damping), which MuJoCo's implicitfast
            # integrator applies implicitly. Applied explicitly through xfrc_applied, 2 sqrt(0.1 k) N m s/rad
            # on the pelvis's ~0.01 kg m^2 overshoots every step at 200 Hz and spins it up (issue 22).
            qvel = self.body.root_qvel
            self.body.model.dof_damping[qvel + 2] = 2 * np.sqrt(self.root_support * self._mass)
            self.body.model.dof_damping[qvel + 3 : qvel + 6] = 2 * np.sqrt(0.1 * self.root_support)
        self._renderer: G1Renderer | None = None
        self._control_steps = 0
        self._ended: dict[str, Any] | None = None  # the terminal step's info, until reset()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        model, data = self.body.model, self.body.data
        mujoco.mj_resetData(model, data)
        dof = self.stand_pose + self.np_random.uniform(-self.reset_noise, self.reset_noise, self.body.num_dof)
        dof = np.clip(dof, self.body.lower, self.body.upper)
        self.body.set_pose(np.array([0.0, 0.0, self._stand_height]), np.array([0.0, 0.0, 0.0, 1.0]), dof)
        mujoco.mj_forward(model, data)
        self._control_steps = 0
        self._ended = None
        return self._observation(), {}

    def joint_positions(self) -> np.ndarray:
        """The measured joint angles (simulator order, rad): where a token decoder starts at reset."""
        return self.body.joint_positions()

    def step(self, action: np.ndarray):
        targets = np.asarray(action, dtype=np.float64)
        if targets.shape != self.action_space.shape:
            raise ValueError(
                f"G1PD: action must be joint position targets of shape {self.action_space.shape} "
                f"(simulator order, radians), got {targets.shape}"
            )
        check_finite_action("G1PD", targets, self.body.joint_names)
        if self._ended is not None:  # fallen or diverged: no resurrection before reset()
            return self._observation(), 0.0, True, False, {**self._ended, "substeps": 0}
        targets = np.clip(targets, self.body.lower, self.body.upper)
        model, data, body = self.body.model, self.body.data, self.body
        warnings_before = _divergence_warnings(data)
        k = self._control_steps
        substeps = int(np.floor((k + 1) * self.physics_hz / self.control_fps + 1e-9)) - int(
            np.floor(k * self.physics_hz / self.control_fps + 1e-9)
        )
        for _ in range(substeps):
            q, dq = data.qpos[body.dof_qpos], data.qvel[body.dof_qvel]
            tau = self.kp * (targets - q) - self.kd * dq
            data.ctrl[body.actuator] = np.clip(tau, -body.torque_limit, body.torque_limit)
            if self.root_support > 0:
                self._apply_support()
            mujoco.mj_step(model, data)
            if _divergence_warnings(data) > warnings_before:
                break  # MuJoCo reset the state to the initial pose: the episode is over
        self._control_steps += 1
        height = float(data.qpos[body.root_qpos + 2])
        upright = float(quat_rotate(body.root_quat(), np.array([0.0, 0.0, 1.0]))[2])
        diverged = _divergence_warnings(data) > warnings_before
        healthy = not diverged and bool(np.isfinite(data.qpos).all()) and height >= self.min_height
        reward = 0.5 + 0.5 * max(upright, 0.0) if healthy else 0.0
        info = {"height": height, "upright": upright, "substeps": substeps, "diverged": diverged}
        if not healthy:
            self._ended = {"height": height, "upright": upright, "diverged": diverged}
        return self._observation(), reward, not healthy, False, info

    def _apply_support(self) -> None:
        """Springs on pelvis height and orientation (towards upright, heading free to turn); their dampers
        are the free joint's ``dof_damping`` (set in ``__init__``)."""
        data, body = self.body.data, self.body
        k = self.root_support
        force = np.array([0.0, 0.0, k * (self._stand_height - data.qpos[body.root_qpos + 2])])
        z_axis = quat_rotate(body.root_quat(), np.array([0.0, 0.0, 1.0]))
        toward_up = np.array([z_axis[1], -z_axis[0], 0.0])  # z_axis x (0, 0, 1)
        data.xfrc_applied[body.root_body] = np.concatenate([force, 0.1 * k * toward_up])

    def _observation(self) -> np.ndarray:
        data, body = self.body.data, self.body
        quat = body.root_quat()
        tilt, lin_vel = heading_frame_state(quat, data.qvel[body.root_qvel : body.root_qvel + 3])
        yaw_rate = quat_rotate(quat, data.qvel[body.root_qvel + 3 : body.root_qvel + 6])[2]
        return proprio_observation(
            float(data.qpos[body.root_qpos + 2]),
            tilt,
            lin_vel,
            float(yaw_rate),
            data.qpos[body.dof_qpos],
            data.qvel[body.dof_qvel],
        )


def _divergence_warnings(data: mujoco.MjData) -> int:
    """How often MuJoCo found the state unstable (and reset it to the initial pose) so far."""
    kinds = (
        mujoco.mjtWarning.mjWARN_BADQACC,
        mujoco.mjtWarning.mjWARN_BADQVEL,
        mujoco.mjtWarning.mjWARN_BADQPOS,
    )
    return sum(int(data.warning[k].number) for k in kinds)
