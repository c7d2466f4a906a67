"""The tracker's observation, in numpy: one function that training and the robot both call.

A tracking policy is only as good as the agreement between the numbers it saw in simulation and the numbers
the robot feeds it. So the observation is built here, on the robot side (numpy only), and the training
environment (``motion_vqvae.tracking``) imports this function rather than keeping a twin.

The layout is BeyondMimic's policy observation without state estimation (every term is measurable on a G1:
encoders, the pelvis gyro and the torso IMU's orientation), concatenated in this order:

==========================  =====  =====================================================================
term                        size   meaning
==========================  =====  =====================================================================
reference joint positions   N      the reference frame's joint angles (simulator order, rad)
reference joint velocities  N      rad/s
anchor orientation error    6      first two columns of ``R(anchor)^T R(reference anchor)`` (row-major)
base angular velocity       3      pelvis gyro, pelvis frame, rad/s
joint positions             N      measured angles minus the default pose
joint velocities            N      measured, rad/s
last action                 N      the policy's previous output
==========================  =====  =====================================================================

Quaternions are xyzw (the project's convention). Every argument may carry a leading batch axis.
"""

from __future__ import annotations

import numpy as np

OBSERVATION_LAYOUT = "sim2real.tracker_obs/1"
"""This layout's name and version, stored in every tracker graph; a runtime with another refuses it."""


def tracker_observation_size(num_dof: int) -> int:
    """Length of :func:`tracker_observation` for ``num_dof`` joints."""
    return 5 * num_dof + 9


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of unit xyzw quaternions."""
    x, y, z, w = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def anchor_orientation_error(anchor_quat: np.ndarray, ref_anchor_quat: np.ndarray) -> np.ndarray:
    """``(..., 6)``: the first two columns of the reference anchor's rotation seen from the robot's anchor.

    Two columns of a rotation matrix are a continuous 6-D representation (no wrap, no double cover); the
    identity (perfect tracking) is ``[1, 0, 0, 1, 0, 0]``.
    """
    rel = np.swapaxes(quat_matrix(anchor_quat), -1, -2) @ quat_matrix(ref_anchor_quat)
    return rel[..., :, :2].reshape(rel.shape[:-2] + (6,))


def tracker_observation(
    ref_dof: np.ndarray,
    ref_dof_vel: np.ndarray,
    anchor_quat: np.ndarray,
    ref_anchor_quat: np.ndarray,
    base_ang_vel: np.ndarray,
    dof: np.ndarray,
    dof_vel: np.ndarray,
    default_dof: np.ndarray,
    last_action: np.ndarray,
) -> np.ndarray:
    """float32 ``(..., 5 N + 9)`` observation in the order of the module docstring's table."""
    parts = (
        ref_dof,
        ref_dof_vel,
        anchor_orientation_error(anchor_quat, ref_anchor_quat),
        base_ang_vel,
        np.asarray(dof) - default_dof,
        dof_vel,
        last_action,
    )
    batch = np.broadcast_shapes(*(np.shape(p)[:-1] for p in parts))
    return np.concatenate([np.broadcast_to(p, batch + np.shape(p)[-1:]) for p in parts], axis=-1).astype(
        np.float32
    )
