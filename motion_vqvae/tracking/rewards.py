"""BeyondMimic's tracking reward and termination terms, vectorised over a batch of environments.

Every function takes ``(E, ...)`` arrays (E environments, B tracked bodies) and returns ``(E,)``. Positions
in metres, quaternions xyzw, velocities in world coordinates. The exp-kernel terms are ``exp(-err / std^2)``
with ``err`` the mean squared error over bodies; their weights and widths are BeyondMimic's, so one return
means the same here as there.
"""

from __future__ import annotations

import numpy as np

from motion_vqvae.rotations import (
    quat_conjugate,
    quat_from_yaw,
    quat_mul,
    quat_rotate,
    quat_to_expmap,
    quat_yaw,
)

# term -> (weight, std)
TRACKING_TERMS: dict[str, tuple[float, float]] = {
    "anchor_pos": (0.5, 0.3),
    "anchor_ori": (0.5, 0.4),
    "body_pos": (1.0, 0.3),
    "body_ori": (1.0, 0.4),
    "body_lin_vel": (1.0, 1.0),
    "body_ang_vel": (1.0, 3.14),
}


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in [0, pi]) between xyzw quaternions."""
    return np.linalg.norm(quat_to_expmap(quat_mul(a, quat_conjugate(b))), axis=-1)


def relative_reference(
    ref_body_pos: np.ndarray,
    ref_body_quat: np.ndarray,
    ref_anchor_pos: np.ndarray,
    ref_anchor_quat: np.ndarray,
    anchor_pos: np.ndarray,
    anchor_quat: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference bodies moved onto the robot's anchor: its x, y and heading, the reference's height.

    BeyondMimic scores body poses this way so that a drift of the whole robot over the floor costs only the
    anchor terms, not every body term at once.
    """
    delta_yaw = quat_yaw(quat_mul(anchor_quat, quat_conjugate(ref_anchor_quat)))  # (E,)
    delta = quat_from_yaw(delta_yaw)  # (E, 4)
    origin = np.concatenate([anchor_pos[:, :2], ref_anchor_pos[:, 2:]], axis=1)  # (E, 3)
    b = ref_body_pos.shape[1]
    delta_b = np.broadcast_to(delta[:, None, :], (len(delta), b, 4))
    pos = origin[:, None, :] + quat_rotate(delta_b, ref_body_pos - ref_anchor_pos[:, None, :])
    return pos, quat_mul(delta_b, ref_body_quat)


def tracking_terms(
    body_pos: np.ndarray,
    body_quat: np.ndarray,
    body_lin_vel: np.ndarray,
    body_ang_vel: np.ndarray,
    ref_body_pos: np.ndarray,
    ref_body_quat: np.ndarray,
    ref_body_lin_vel: np.ndarray,
    ref_body_ang_vel: np.ndarray,
    anchor: int,
) -> dict[str, np.ndarray]:
    """Unweighted exp-kernel terms in [0, 1] (1 = perfect tracking), each ``(E,)``."""
    rel_pos, rel_quat = relative_reference(
        ref_body_pos, ref_body_quat, ref_body_pos[:, anchor], ref_body_quat[:, anchor],
        body_pos[:, anchor], body_quat[:, anchor],
    )  # fmt: skip
    errors = {
        "anchor_pos": np.sum((body_pos[:, anchor] - ref_body_pos[:, anchor]) ** 2, axis=-1),
        "anchor_ori": quat_angle(body_quat[:, anchor], ref_body_quat[:, anchor]) ** 2,
        "body_pos": np.mean(np.sum((body_pos - rel_pos) ** 2, axis=-1), axis=-1),
        "body_ori": np.mean(quat_angle(body_quat, rel_quat) ** 2, axis=-1),
        "body_lin_vel": np.mean(np.sum((body_lin_vel - ref_body_lin_vel) ** 2, axis=-1), axis=-1),
        "body_ang_vel": np.mean(np.sum((body_ang_vel - ref_body_ang_vel) ** 2, axis=-1), axis=-1),
    }
    return {k: np.exp(-errors[k] / TRACKING_TERMS[k][1] ** 2) for k in TRACKING_TERMS}


def joint_limit_excess(dof: np.ndarray, lower: np.ndarray, upper: np.ndarray, share: float) -> np.ndarray:
    """Sum over joints of how far each angle is past the soft limits (``share`` of the range, centred)."""
    mid, half = 0.5 * (lower + upper), 0.5 * share * (upper - lower)
    return np.sum(np.maximum(np.abs(dof - mid) - half, 0.0), axis=-1)


def projected_gravity_z(quat: np.ndarray) -> np.ndarray:
    """z component of gravity's direction seen in the body frame (-1 upright, +1 upside down)."""
    down = np.broadcast_to(np.array([0.0, 0.0, -1.0]), quat.shape[:-1] + (3,))
    return quat_rotate(quat_conjugate(quat), down)[..., 2]
