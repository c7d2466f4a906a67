"""Reference motion for the tracker: clips at the control rate with every body's pose and velocity.

The tracker compares the simulated robot with the reference body by body (BeyondMimic's terms), so the
reference is expanded once, at load time, by forward kinematics of the same MJCF: per frame the joint
angles and velocities, and the world position, orientation (xyzw), linear and angular velocity of every
tracked body. Clips come from the project's readers, each at its own fps, resampled to the control rate;
several clips are concatenated and ``clip_start``/``clip_stop`` keep them apart (an episode never runs
from one clip into the next). Decoded tokens enter through :meth:`ReferenceMotion.from_motions` the same
way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from motion_vqvae.data import Motion, load_motions, resample
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.errors import InvalidValue
from motion_vqvae.rotations import quat_conjugate, quat_mul, quat_to_expmap
from sim2real.joint_map import remap_columns

ANCHOR_BODY = "torso_link"
"""The body whose pose anchors the reference to the robot (BeyondMimic's anchor)."""
TRACKED_BODIES: tuple[str, ...] = (
    "pelvis",
    "left_hip_roll_link",
    "left_knee_link",
    "left_ankle_roll_link",
    "right_hip_roll_link",
    "right_knee_link",
    "right_ankle_roll_link",
    "torso_link",
    "left_shoulder_roll_link",
    "left_elbow_link",
    "left_wrist_yaw_link",
    "right_shoulder_roll_link",
    "right_elbow_link",
    "right_wrist_yaw_link",
)
"""Bodies whose poses and velocities the reward tracks (BeyondMimic's G1 list)."""
END_EFFECTORS: tuple[str, ...] = (
    "left_ankle_roll_link",
    "right_ankle_roll_link",
    "left_wrist_yaw_link",
    "right_wrist_yaw_link",
)
"""Bodies whose height error ends an episode."""
MIN_FRAMES = 10


def read_clips(path: str | Path | Sequence[str | Path], fps: float | None) -> list[Motion]:
    """Reference clips read with the project's readers (``fps`` for files that state none).

    Joint jumps (retargeting glitches of 30+ rad/s, which several g1_moves clips have) are bridged by the
    readers' interpolation: no servo can follow them, and a tracker would learn to fall there.
    """
    return load_motions(path, fps=fps, robot="g1_29dof", repair_jumps=True)


@dataclass
class ReferenceMotion:
    """Concatenated clips at ``fps``; arrays are indexed by global frame, bodies by :data:`TRACKED_BODIES`."""

    fps: float
    names: list[str]
    clip_start: np.ndarray  # (C,) first global frame of each clip
    clip_stop: np.ndarray  # (C,) one past the last frame
    root_pos: np.ndarray  # (T, 3)
    root_quat: np.ndarray  # (T, 4) xyzw
    root_lin_vel: np.ndarray  # (T, 3) world
    root_ang_vel: np.ndarray  # (T, 3) world
    dof: np.ndarray  # (T, N) simulator order
    dof_vel: np.ndarray  # (T, N)
    body_pos: np.ndarray  # (T, B, 3) world
    body_quat: np.ndarray  # (T, B, 4) xyzw
    body_lin_vel: np.ndarray  # (T, B, 3) world
    body_ang_vel: np.ndarray  # (T, B, 3) world

    @property
    def num_frames(self) -> int:
        return len(self.dof)

    @property
    def anchor(self) -> int:
        """Index of :data:`ANCHOR_BODY` in the body axis."""
        return TRACKED_BODIES.index(ANCHOR_BODY)

    def clip_of(self, frames: np.ndarray) -> np.ndarray:
        """Clip index of each global frame."""
        return np.searchsorted(self.clip_stop, frames, side="right")

    @classmethod
    def from_file(
        cls, path: str | Path | Sequence[str | Path], fps: float | None, body: G1Body, control_fps: float
    ) -> ReferenceMotion:
        """Clips read by :func:`read_clips`, for ``body``."""
        return cls.from_motions(read_clips(path, fps), body, control_fps)

    @classmethod
    def from_motions(cls, motions: Sequence[Motion], body: G1Body, control_fps: float) -> ReferenceMotion:
        """Resample each motion to ``control_fps``, map its joints onto ``body`` and expand it."""
        if not motions:
            raise InvalidValue("tracker reference: no clips given")
        parts = []
        for motion in motions:
            m = resample(motion, control_fps)
            if m.num_frames < MIN_FRAMES:
                raise InvalidValue(
                    f"tracker reference: clip '{motion.name}' has {m.num_frames} frames at {control_fps} fps;"
                    f" need at least {MIN_FRAMES}"
                )
            if m.joint_names and m.joint_names != body.joint_names:
                dof = remap_columns(m.dof, m.joint_names, body.joint_names, fill=0.0)
            elif m.num_dof == body.num_dof:
                dof = m.dof
            else:
                raise InvalidValue(
                    f"tracker reference: clip '{motion.name}' has {m.num_dof} unnamed joints; the model has "
                    f"{body.num_dof}"
                )
            parts.append(_expand(m.root_pos, m.root_quat, np.clip(dof, body.lower, body.upper), body, m.fps))
        lengths = np.array([len(p["dof"]) for p in parts])
        stops = np.cumsum(lengths)
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return cls(
            fps=float(control_fps),
            names=[m.name for m in motions],
            clip_start=stops - lengths,
            clip_stop=stops,
            **arrays,
        )


def _expand(
    root_pos: np.ndarray, root_quat: np.ndarray, dof: np.ndarray, body: G1Body, fps: float
) -> dict[str, np.ndarray]:
    """Forward kinematics and finite-difference velocities of one clip."""
    model, data = body.model, body.data
    ids = [model.body(name).id for name in TRACKED_BODIES]
    t = len(dof)
    body_pos = np.empty((t, len(ids), 3))
    body_quat = np.empty((t, len(ids), 4))
    for i in range(t):
        body.set_pose(root_pos[i], root_quat[i], dof[i])
        mujoco.mj_kinematics(model, data)
        body_pos[i] = data.xpos[ids]
        body_quat[i] = data.xquat[ids][:, [1, 2, 3, 0]]  # wxyz -> xyzw
    return {
        "root_pos": root_pos,
        "root_quat": root_quat,
        "root_lin_vel": np.gradient(root_pos, 1.0 / fps, axis=0),
        "root_ang_vel": angular_velocity(root_quat, fps),
        "dof": dof,
        "dof_vel": np.gradient(dof, 1.0 / fps, axis=0),
        "body_pos": body_pos,
        "body_quat": body_quat,
        "body_lin_vel": np.gradient(body_pos, 1.0 / fps, axis=0),
        "body_ang_vel": angular_velocity(body_quat, fps),
    }


def angular_velocity(quat: np.ndarray, fps: float) -> np.ndarray:
    """World angular velocity (rad/s) of xyzw quaternions along axis 0, central differences inside."""
    forward = quat_to_expmap(quat_mul(quat[1:], quat_conjugate(quat[:-1]))) * fps  # (T-1, ..., 3)
    out = np.empty(quat.shape[:-1] + (3,))
    out[0], out[-1] = forward[0], forward[-1]
    out[1:-1] = 0.5 * (forward[1:] + forward[:-1])
    return out
