"""The robot model the project ships (a mesh-free G1 29-DOF MJCF) and a per-path cache of loaded models.

The shipped XML (``motion_vqvae/assets/g1_29dof.xml``, built by ``scripts/build_g1_model.py``) has the
Unitree G1's exact kinematics and inertials but only primitive geoms, so FK, metrics and physics run
without the Unitree meshes. Any other MJCF with a free root joint works wherever a path is accepted.
"""

from __future__ import annotations

import functools
from pathlib import Path

import mujoco

from motion_vqvae.errors import InvalidValue, MissingPath

FREE_JOINT_NAME = "floating_base_joint"


def default_mjcf_path() -> Path:
    """Path of the shipped G1 29-DOF MJCF."""
    return Path(__file__).resolve().parent / "assets" / "g1_29dof.xml"


def resolve_mjcf(mjcf: str | Path | None) -> Path:
    """Absolute path of ``mjcf`` (the shipped model when None); missing files fail with the path named."""
    path = default_mjcf_path() if mjcf is None else Path(mjcf).expanduser().resolve()
    if not path.is_file():
        raise MissingPath(f"MJCF file {path} does not exist; pass the path of a MuJoCo XML model")
    return path


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(path)


def load_model(mjcf: str | Path | None = None) -> mujoco.MjModel:
    """The compiled model of ``mjcf``, parsed once per path: callers must treat it as read-only."""
    return _load_cached(str(resolve_mjcf(mjcf)))


def hinge_joint_names(model: mujoco.MjModel) -> list[str]:
    """Names of the model's hinge joints in qpos order (the robot's DOF order)."""
    return [
        model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
    ]


def body_names(model: mujoco.MjModel) -> list[str]:
    """Names of all bodies except the world body, in body-id order."""
    return [model.body(b).name for b in range(1, model.nbody)]


def free_joint_id(model: mujoco.MjModel, source: str | Path = "model") -> int:
    """Id of the model's single free (root) joint; models without exactly one fail with a clear error."""
    free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if len(free) != 1:
        raise InvalidValue(
            f"{source}: expected exactly one free root joint (e.g. '{FREE_JOINT_NAME}'), found {len(free)}; "
            "give the root body a <freejoint/>"
        )
    return free[0]
