"""Quaternion helpers in one convention: **xyzw**, Hamilton product, active rotations, numpy float64.

Every quaternion inside the project is xyzw (as scipy and the PHC motion lib use); readers and writers
convert at the edges. Functions broadcast over leading dimensions: ``q`` is ``(..., 4)``, ``v`` ``(..., 3)``.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions; zero quaternions are left as they are (callers validate first)."""
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / np.maximum(norm, _EPS)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion."""
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` by unit quaternions ``q``."""
    xyz, w = q[..., :3], q[..., 3:]
    t = 2.0 * np.cross(xyz, v)
    return v + w * t + np.cross(xyz, t)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of unit quaternions."""
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def quat_from_yaw(yaw: np.ndarray) -> np.ndarray:
    """Quaternions of rotations about +z by ``yaw`` radians."""
    half = 0.5 * np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(half)
    return np.stack([zeros, zeros, np.sin(half), np.cos(half)], axis=-1)


def quat_yaw(q: np.ndarray) -> np.ndarray:
    """Heading angle: direction of the body x axis projected onto the ground plane."""
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_to_expmap(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis * angle, angle in [0, pi]) of unit quaternions.

    Uses ``atan2`` on the vector and scalar parts so it stays accurate near 0 (where ``acos`` loses
    precision) and near pi (where the sign of ``w`` flips: both signs map to the same rotation).
    """
    q = np.where(q[..., 3:] < 0, -q, q)
    xyz, w = q[..., :3], q[..., 3]
    sin_half = np.linalg.norm(xyz, axis=-1)
    angle = 2.0 * np.arctan2(sin_half, w)
    small = sin_half < 1e-8
    # angle / sin(angle/2) -> 2 + angle^2/12 as angle -> 0 (Taylor), avoiding 0/0.
    scale = np.where(small, 2.0 + angle**2 / 12.0, angle / np.where(small, 1.0, sin_half))
    return xyz * scale[..., None]


def expmap_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternions of rotation vectors; exact for small angles through a Taylor branch."""
    angle = np.linalg.norm(r, axis=-1)
    half = 0.5 * angle
    small = angle < 1e-8
    # sin(angle/2) / angle -> 1/2 - angle^2/48 as angle -> 0.
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([r * scale[..., None], np.cos(half)[..., None]], axis=-1)


def quat_to_6d(q: np.ndarray) -> np.ndarray:
    """Continuous 6D rotation representation: the first two columns of the rotation matrix."""
    m = quat_to_matrix(q)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def sixd_to_quat(d6: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quat_to_6d` via Gram-Schmidt, robust to non-orthonormal network outputs."""
    a, b = d6[..., :3], d6[..., 3:]
    c0 = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)
    b = b - np.sum(c0 * b, axis=-1, keepdims=True) * c0
    c1 = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    c2 = np.cross(c0, c1)
    return matrix_to_quat(np.stack([c0, c1, c2], axis=-1))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternions (w >= 0) of rotation matrices, by Shepperd's numerically stable method."""
    m = np.asarray(m, dtype=np.float64)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], trace], axis=-1)
    choice = np.argmax(candidates, axis=-1)
    q = np.empty((m.shape[0], 4))
    for k in range(4):
        sel = choice == k
        if not np.any(sel):
            continue
        r = m[sel]
        if k == 3:
            s = 2.0 * np.sqrt(1.0 + trace[sel])
            q[sel] = np.stack(
                [
                    (r[:, 2, 1] - r[:, 1, 2]) / s,
                    (r[:, 0, 2] - r[:, 2, 0]) / s,
                    (r[:, 1, 0] - r[:, 0, 1]) / s,
                    0.25 * s,
                ],
                -1,
            )
        else:
            i, j, m2 = k, (k + 1) % 3, (k + 2) % 3
            s = 2.0 * np.sqrt(np.maximum(1.0 + r[:, i, i] - r[:, j, j] - r[:, m2, m2], _EPS))
            out = np.empty((r.shape[0], 4))
            out[:, i] = 0.25 * s
            out[:, j] = (r[:, j, i] + r[:, i, j]) / s
            out[:, m2] = (r[:, m2, i] + r[:, i, m2]) / s
            out[:, 3] = (r[:, m2, j] - r[:, j, m2]) / s
            q[sel] = out
    q = np.where(q[:, 3:] < 0, -q, q)
    return quat_normalize(q).reshape(*shape, 4)


def quat_make_continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so consecutive quaternions have a non-negative dot product."""
    q = np.array(q, dtype=np.float64, copy=True)
    if len(q) < 2:
        return q
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.concatenate([[False], dots < 0])
    sign = np.where(np.cumsum(flips) % 2 == 1, -1.0, 1.0)
    return q * sign[:, None]


def quat_slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from ``a`` to ``b`` at fractions ``t`` (shortest path)."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(near, t, np.sin(t * theta) / safe)
    return quat_normalize(wa * a + wb * b)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi
