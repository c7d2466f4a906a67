"""The G1's geoms as meshes, posed per frame by MuJoCo forward kinematics (no GL needed on the server)."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
import trimesh

from motion_vqvae.data import Motion
from motion_vqvae.kinematics import ForwardKinematics


@dataclass
class GeomPoses:
    """World pose of every drawn geom in every frame: ``pos (T, G, 3)``, ``wxyz (T, G, 4)``."""

    pos: np.ndarray
    wxyz: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.pos)


def geom_meshes(model: mujoco.MjModel) -> list[tuple[int, trimesh.Trimesh]]:
    """``(geom id, mesh in the geom frame)`` for each box, capsule, cylinder, sphere and ellipsoid."""
    meshes = []
    for gid in range(model.ngeom):
        kind, size = model.geom_type[gid], model.geom_size[gid]
        if kind == mujoco.mjtGeom.mjGEOM_BOX:
            mesh = trimesh.creation.box(extents=2 * size)
        elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            mesh = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[12, 12])
        elif kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
            mesh = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
        elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            mesh = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
        elif kind == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
            mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
            mesh.apply_scale(size)
        else:  # the floor plane and anything without a simple shape
            continue
        meshes.append((gid, mesh))
    return meshes


def geom_poses(fk: ForwardKinematics, motion: Motion, geom_ids: list[int]) -> GeomPoses:
    """Pose of ``geom_ids`` in every frame of ``motion`` (joints matched by name, root as in the clip)."""
    qpos = fk.qpos(motion.root_pos, motion.root_quat, motion.dof, motion.joint_names, clip=motion.name)
    data = mujoco.MjData(fk.model)
    pos = np.empty((len(qpos), len(geom_ids), 3))
    wxyz = np.empty((len(qpos), len(geom_ids), 4))
    for t, row in enumerate(qpos):
        data.qpos[:] = row
        mujoco.mj_kinematics(fk.model, data)
        pos[t] = data.geom_xpos[geom_ids]
        for k, gid in enumerate(geom_ids):
            mujoco.mju_mat2Quat(wxyz[t, k], data.geom_xmat[gid])
    return GeomPoses(pos, wxyz)
