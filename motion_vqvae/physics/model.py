"""The robot as the feasibility metrics see it: sole points, limits, mass, and a one-pass trajectory sweep.

One :class:`PhysicsModel` holds a private copy of the MJCF model with constraints (contacts, joint limits)
switched off, so ``mj_inverse`` returns the bare generalized force ``M qacc + c`` that the motion needs;
the contact forces are fitted afterwards (``physics.contact``) instead of being guessed by MuJoCo's soft
contact model from the motion's penetration. One ``MjData`` is reused for every frame of every clip.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from scipy.signal import savgol_filter

from motion_vqvae.data.motion import Motion
from motion_vqvae.data.resample import resample
from motion_vqvae.errors import InvalidValue
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.physics.constants import PHYSICS_FPS, SMOOTHING_WINDOW_S
from motion_vqvae.robot_model import free_joint_id, load_model, resolve_mjcf

# Bottom corners of a box geom in its own frame, in units of its half sizes.
_SOLE_CORNERS = np.array([[sx, sy, -1.0] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0)])


@dataclass
class Trajectory:
    """Per-frame quantities of one clip at :data:`PHYSICS_FPS` (P sole points, nv generalized velocities).

    ``qfrc``, ``jac`` and ``com_acc`` are ``None`` for clips shorter than 3 frames, which have no
    acceleration.
    """

    dof: np.ndarray  # (T, J) hinge joint angles of the model, rad (joints the motion lacks at qpos0)
    soles: np.ndarray  # (T, P, 3) world positions of the sole points, m
    com: np.ndarray  # (T, 3) centre of mass, m
    com_acc: np.ndarray | None  # (T, 3) filtered CoM acceleration, m/s^2
    qfrc: np.ndarray | None  # (T, nv) generalized force the motion needs without contacts
    jac: np.ndarray | None  # (T, P, 3, nv) translational Jacobians of the sole points


class PhysicsModel:
    """One MJCF robot (default: the shipped G1) prepared for the feasibility metrics. Not thread-safe."""

    def __init__(self, mjcf: str | Path | None = None) -> None:
        self.mjcf_path = resolve_mjcf(mjcf)
        self.model = copy.deepcopy(load_model(self.mjcf_path))
        self.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)
        self._data = mujoco.MjData(self.model)
        self._fk = ForwardKinematics(self.mjcf_path)
        m = self.model
        root = free_joint_id(m, self.mjcf_path)
        self.root_body = int(m.jnt_bodyid[root])
        adr = int(m.jnt_dofadr[root])
        self.root_dofs = np.arange(adr, adr + 6)
        hinges = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        self.joint_names = [m.joint(j).name for j in hinges]
        self.joint_qpos = m.jnt_qposadr[hinges]
        self.joint_dofs = m.jnt_dofadr[hinges]
        limited = m.jnt_limited[hinges].astype(bool)
        self.lower = np.where(limited, m.jnt_range[hinges, 0], -np.inf)
        self.upper = np.where(limited, m.jnt_range[hinges, 1], np.inf)
        torque_limited = m.jnt_actfrclimited[hinges].astype(bool)
        self.torque_limit = np.where(torque_limited, np.abs(m.jnt_actfrcrange[hinges]).max(axis=1), np.inf)
        self.weight = float(m.body_subtreemass[self.root_body] * np.linalg.norm(m.opt.gravity))
        self.gravity = float(np.linalg.norm(m.opt.gravity))
        self._sole_body, self._sole_local, self.sole_friction = self._sole_points()

    def _sole_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bottom corners of the box geoms (the feet of the shipped G1), in their bodies' frames."""
        m = self.model
        feet = [g for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX]
        if not feet:
            raise InvalidValue(
                f"{self.mjcf_path}: no box geoms; the feasibility metrics take the bottom corners of the "
                "foot boxes as sole points, so give each foot a box geom"
            )
        bodies, local, friction = [], [], []
        for g in feet:
            rot = np.empty(9)
            mujoco.mju_quat2Mat(rot, m.geom_quat[g])
            corners = (_SOLE_CORNERS * m.geom_size[g]) @ rot.reshape(3, 3).T + m.geom_pos[g]
            bodies += [int(m.geom_bodyid[g])] * len(corners)
            local.append(corners)
            friction += [float(m.geom_friction[g, 0])] * len(corners)
        return np.array(bodies), np.concatenate(local), np.array(friction)

    @property
    def num_sole_points(self) -> int:
        return len(self._sole_body)

    def sweep(self, motion: Motion) -> Trajectory:
        """Kinematics and contact-free inverse dynamics of ``motion`` at :data:`PHYSICS_FPS`, per frame."""
        if motion.fps != PHYSICS_FPS:
            motion = resample(motion, PHYSICS_FPS)
        qpos = self._fk.qpos(
            motion.root_pos, motion.root_quat, motion.dof, motion.joint_names, clip=f"'{motion.name}'"
        )
        m, d = self.model, self._data
        t_count, p_count = len(qpos), self.num_sole_points
        dynamic = t_count >= 3
        qvel, qacc = _filtered_derivatives(m, qpos) if dynamic else (None, None)
        soles = np.empty((t_count, p_count, 3))
        com = np.empty((t_count, 3))
        qfrc = np.empty((t_count, m.nv)) if dynamic else None
        jac = np.empty((t_count, p_count, 3, m.nv)) if dynamic else None
        jacp = np.empty((3, m.nv))
        for t in range(t_count):
            d.qpos[:] = qpos[t]
            if dynamic:
                d.qvel[:] = qvel[t]
                d.qacc[:] = qacc[t]
                mujoco.mj_inverse(m, d)  # runs the position stage too: xpos, xmat, subtree_com
                qfrc[t] = d.qfrc_inverse
            else:
                mujoco.mj_kinematics(m, d)
                mujoco.mj_comPos(m, d)
            xmat = d.xmat[self._sole_body].reshape(-1, 3, 3)
            soles[t] = d.xpos[self._sole_body] + np.einsum("pij,pj->pi", xmat, self._sole_local)
            com[t] = d.subtree_com[self.root_body]
            if dynamic:
                for p in range(p_count):
                    mujoco.mj_jac(m, d, jacp, None, soles[t, p], int(self._sole_body[p]))
                    jac[t, p] = jacp
        com_acc = (
            savgol_filter(com, _window(t_count), 2, deriv=2, delta=1.0 / PHYSICS_FPS, axis=0)
            if dynamic
            else None
        )
        return Trajectory(qpos[:, self.joint_qpos], soles, com, com_acc, qfrc, jac)


def _window(frames: int) -> int:
    """Odd Savitzky-Golay window of :data:`SMOOTHING_WINDOW_S`, shrunk to fit short clips (>= 3)."""
    window = int(round(SMOOTHING_WINDOW_S * PHYSICS_FPS)) | 1
    return min(window, frames if frames % 2 else frames - 1)


def _filtered_derivatives(model: mujoco.MjModel, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``qvel`` and ``qacc`` ``(T, nv)``: central differences on the configuration manifold (quaternions
    included, via ``mj_differentiatePos``), then a quadratic Savitzky-Golay fit for value and slope."""
    t_count, dt = len(qpos), 1.0 / PHYSICS_FPS
    raw = np.empty((t_count, model.nv))
    for t in range(t_count):
        lo, hi = max(t - 1, 0), min(t + 1, t_count - 1)
        mujoco.mj_differentiatePos(model, raw[t], (hi - lo) * dt, qpos[lo], qpos[hi])
    window = _window(t_count)
    qvel = savgol_filter(raw, window, 2, axis=0)
    qacc = savgol_filter(raw, window, 2, deriv=1, delta=dt, axis=0)
    return qvel, qacc


@functools.lru_cache(maxsize=4)
def physics_model(mjcf: str | None = None) -> PhysicsModel:
    """The :class:`PhysicsModel` of ``mjcf`` (None: the shipped G1), built once per path and process."""
    return PhysicsModel(mjcf)
