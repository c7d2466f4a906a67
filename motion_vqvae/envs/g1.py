"""What both G1 environments share: the model's qpos layout, joint limits, the standing pose and the
proprioceptive observation.

Both environments describe the robot with the feature layout's quantities (root height, tilt relative to
the heading, root velocity in the heading frame, yaw rate, joint angles and velocities), so a policy sees
the same numbers whether the body is moved kinematically or by physics.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from motion_vqvae.data.sample_motion import STAND_POSE
from motion_vqvae.errors import InvalidValue
from motion_vqvae.robot_model import free_joint_id, hinge_joint_names, resolve_mjcf
from motion_vqvae.rotations import (
    quat_conjugate,
    quat_from_yaw,
    quat_mul,
    quat_rotate,
    quat_to_expmap,
    quat_yaw,
)


class G1Body:
    """One MuJoCo model and data of the G1 with named access to the root and the hinge joints.

    Each instance compiles its own ``MjModel`` (physics may change the timestep), so environments in one
    process never share mutable state.
    """

    def __init__(self, mjcf: str | Path | None = None, timestep: float | None = None) -> None:
        self.mjcf_path = resolve_mjcf(mjcf)
        self.model = mujoco.MjModel.from_xml_path(str(self.mjcf_path))
        if timestep is not None:
            self.model.opt.timestep = timestep
        self.data = mujoco.MjData(self.model)
        root = free_joint_id(self.model, self.mjcf_path)
        self.root_qpos = int(self.model.jnt_qposadr[root])
        self.root_qvel = int(self.model.jnt_dofadr[root])
        self.root_body = int(self.model.jnt_bodyid[root])
        self.joint_names = hinge_joint_names(self.model)
        ids = [self.model.joint(n).id for n in self.joint_names]
        self.dof_qpos = np.array([self.model.jnt_qposadr[j] for j in ids])
        self.dof_qvel = np.array([self.model.jnt_dofadr[j] for j in ids])
        self.lower = self.model.jnt_range[ids, 0].copy()
        self.upper = self.model.jnt_range[ids, 1].copy()
        self.torque_limit = np.abs(self.model.jnt_actfrcrange[ids]).max(axis=1)
        # Motor actuator of each hinge joint (ctrl column), found by its transmission target.
        by_joint = {int(self.model.actuator_trnid[a, 0]): a for a in range(self.model.nu)}
        missing = [n for n, j in zip(self.joint_names, ids, strict=True) if j not in by_joint]
        if missing:
            raise InvalidValue(f"{self.mjcf_path}: joints {missing} have no actuator; add a <motor> for each")
        self.actuator = np.array([by_joint[j] for j in ids])

    @property
    def num_dof(self) -> int:
        return len(self.joint_names)

    def stand_pose(self) -> np.ndarray:
        """Bent-knee standing joint angles (the sample motion's rest pose), clipped to the joint limits."""
        pose = np.array([STAND_POSE.get(n, 0.0) for n in self.joint_names])
        return np.clip(pose, self.lower, self.upper)

    def set_pose(self, pos: np.ndarray, quat_xyzw: np.ndarray, dof: np.ndarray) -> None:
        """Write a root pose (quaternion xyzw, the project's convention) and joint angles into qpos."""
        a = self.root_qpos
        self.data.qpos[a : a + 3] = pos
        self.data.qpos[a + 3] = quat_xyzw[3]  # MuJoCo wants wxyz
        self.data.qpos[a + 4 : a + 7] = quat_xyzw[:3]
        self.data.qpos[self.dof_qpos] = dof

    def joint_positions(self) -> np.ndarray:
        """Hinge joint angles now (simulator order, rad), a copy."""
        return self.data.qpos[self.dof_qpos].copy()

    def root_quat(self) -> np.ndarray:
        """Current root quaternion, xyzw."""
        w, x, y, z = self.data.qpos[self.root_qpos + 3 : self.root_qpos + 7]
        return np.array([x, y, z, w])

    def standing_height(self, dof: np.ndarray) -> float:
        """Pelvis height that puts the lowest foot-box corner on the floor for these joint angles."""
        self.set_pose(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0]), dof)
        mujoco.mj_kinematics(self.model, self.data)
        lowest = np.inf
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
        for g in range(self.model.ngeom):
            if self.model.geom_type[g] != mujoco.mjtGeom.mjGEOM_BOX:
                continue
            pts = (
                self.data.geom_xpos[g]
                + (corners * self.model.geom_size[g]) @ self.data.geom_xmat[g].reshape(3, 3).T
            )
            lowest = min(lowest, float(pts[:, 2].min()))
        if not np.isfinite(lowest):
            raise InvalidValue(f"{self.mjcf_path}: no box geoms (feet) to stand on")
        return 1.0 - lowest


def check_finite_action(env: str, action: np.ndarray, names: list[str]) -> None:
    """ValueError naming the first non-finite entries of ``action`` (``names[i]`` says what entry i is).

    ``np.clip`` keeps NaN, and MuJoCo answers a NaN control by resetting the simulation to its initial
    pose: a non-finite action must never reach it.
    """
    bad = np.flatnonzero(~np.isfinite(action))
    if bad.size:
        entries = ", ".join(f"action[{i}] ({names[i]}) = {action[i]}" for i in bad[:4])
        raise ValueError(
            f"{env}: the action must be finite; got {entries}{' ...' if bad.size > 4 else ''} "
            f"({bad.size} non-finite of {action.size})"
        )


def heading_frame_state(quat_xyzw: np.ndarray, lin_vel_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tilt (exp-map, heading removed) and linear velocity in the heading frame, as in the features."""
    inv_heading = quat_conjugate(quat_from_yaw(quat_yaw(quat_xyzw)))
    return quat_to_expmap(quat_mul(inv_heading, quat_xyzw)), quat_rotate(inv_heading, lin_vel_world)


def proprio_observation(
    height: float,
    tilt: np.ndarray,
    lin_vel: np.ndarray,
    yaw_rate: float,
    dof: np.ndarray,
    dof_vel: np.ndarray,
) -> np.ndarray:
    """float32 ``[height, tilt(3), lin_vel(3), yaw_rate, dof(N), dof_vel(N)]`` (the feature order)."""
    return np.concatenate([[height], tilt, lin_vel, [yaw_rate], dof, dof_vel]).astype(np.float32)


def proprio_size(num_dof: int) -> int:
    """Length of :func:`proprio_observation` for ``num_dof`` joints."""
    return 8 + 2 * num_dof
