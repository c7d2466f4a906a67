"""Forward kinematics of motions on an MJCF robot: world positions of every body, frame by frame.

MuJoCo's ``mj_kinematics`` does the tree walk (so any MJCF with a free root joint works, whatever its
joint types); a tight loop over frames with preallocated arrays keeps the Python overhead to a few
microseconds per frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mujoco
import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue, UnknownKey
from motion_vqvae.robot_model import body_names, free_joint_id, hinge_joint_names, load_model, resolve_mjcf

logger = logging.getLogger(__name__)


class ForwardKinematics:
    """World body positions of motions on one robot model (loaded once, cached per path).

    Motion joints are matched to the model's hinge joints by name; a motion joint the model lacks is an
    error, model joints the motion lacks stay at their reference pose (0 for hinges). Not thread-safe:
    use one instance per thread.
    """

    def __init__(self, mjcf: str | Path | None = None) -> None:
        self.mjcf_path = resolve_mjcf(mjcf)
        self.model = load_model(self.mjcf_path)
        self._data = mujoco.MjData(self.model)
        root = free_joint_id(self.model, self.mjcf_path)
        self._root_adr = int(self.model.jnt_qposadr[root])
        self.joint_names = hinge_joint_names(self.model)
        self._joint_adr = {
            name: int(self.model.jnt_qposadr[self.model.joint(name).id]) for name in self.joint_names
        }
        self.body_names = body_names(self.model)

    @property
    def num_bodies(self) -> int:
        """Number of bodies returned per frame (all but the world)."""
        return len(self.body_names)

    def body_index(self, name: str) -> int:
        """Column of body ``name`` in the ``(T, B, 3)`` output."""
        try:
            return self.body_names.index(name)
        except ValueError:
            raise UnknownKey(f"{self.mjcf_path}: no body '{name}'. Available: {self.body_names}") from None

    def qpos(
        self,
        root_pos: np.ndarray,
        root_quat: np.ndarray,
        dof: np.ndarray,
        joint_names: list[str],
        clip: str = "motion",
    ) -> np.ndarray:
        """MuJoCo ``qpos`` rows ``(T, nq)`` for root poses (quaternions xyzw) and named joint angles."""
        root_pos = np.asarray(root_pos, dtype=np.float64)
        root_quat = np.asarray(root_quat, dtype=np.float64)
        dof = np.asarray(dof, dtype=np.float64)
        t = len(root_pos)
        if root_pos.shape != (t, 3) or root_quat.shape != (t, 4) or dof.ndim != 2 or len(dof) != t:
            raise ValueError(
                f"{clip}: expected root_pos (T, 3), root_quat (T, 4), dof (T, N) with one T, got "
                f"{root_pos.shape}, {root_quat.shape}, {dof.shape}"
            )
        if len(joint_names) != dof.shape[1]:
            raise ValueError(
                f"{clip}: {len(joint_names)} joint names for {dof.shape[1]} dof columns; "
                "set Motion.joint_names"
            )
        unknown = [name for name in joint_names if name not in self._joint_adr]
        if unknown:
            raise InvalidValue(
                f"{clip}: joints {unknown} are not hinge joints of {self.mjcf_path}. "
                f"Model joints: {self.joint_names}; rename or drop those columns"
            )
        qpos = np.tile(self.model.qpos0, (t, 1))
        a = self._root_adr
        qpos[:, a : a + 3] = root_pos
        qpos[:, a + 3] = root_quat[:, 3]  # MuJoCo wants wxyz
        qpos[:, a + 4 : a + 7] = root_quat[:, :3]
        qpos[:, [self._joint_adr[name] for name in joint_names]] = dof
        if not np.isfinite(qpos).all():
            bad = int(np.argmax(~np.isfinite(qpos).all(axis=1)))
            raise ValueError(
                f"{clip}: non-finite root pose or joint angle at frame {bad}; clean the clip first"
            )
        return qpos

    def positions_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """World positions ``(T, B, 3)`` of all bodies but the world for ``qpos`` rows ``(T, nq)``."""
        qpos = np.ascontiguousarray(qpos, dtype=np.float64)
        if qpos.ndim != 2 or qpos.shape[1] != self.model.nq:
            raise ValueError(f"qpos must be (T, {self.model.nq}) for {self.mjcf_path}, got {qpos.shape}")
        model, data = self.model, self._data
        out = np.empty((len(qpos), self.num_bodies, 3))
        data_qpos, xpos = data.qpos, data.xpos
        kinematics = mujoco.mj_kinematics
        for t in range(len(qpos)):
            data_qpos[:] = qpos[t]
            kinematics(model, data)
            out[t] = xpos[1:]
        return out

    def body_positions(self, motion: Motion) -> np.ndarray:
        """World positions ``(T, B, 3)`` in metres of every body but the world, ordered as ``body_names``."""
        qpos = self.qpos(
            motion.root_pos, motion.root_quat, motion.dof, motion.joint_names, clip=f"'{motion.name}'"
        )
        return self.positions_from_qpos(qpos)
