"""Contact forces within friction cones, fitted to what the motion needs, and the support polygon.

The floor is the plane z = const (normal +z), so a contact force at a sole point is a non-negative sum of
the :data:`PYRAMID_EDGES` edges of a linearised friction cone, ``(mu cos a, mu sin a, 1)``. The forces that
best supply the root's generalized force (six rows: world force, body-frame torque) are a non-negative least
squares problem per frame; what they cannot supply is the residual, the part of the motion no floor could
have produced (a push from nowhere).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from motion_vqvae.physics.constants import PYRAMID_EDGES, SUPPORT_MARGIN_M, TORQUE_ARM_M

# Rows 3..5 of the root's generalized force are torques: dividing them by a lever arm makes the wrench one
# quantity in newtons, and the fit minimises exactly the residual that is reported.
_ROOT_ROW_SCALE = np.array([1.0, 1.0, 1.0, 1.0 / TORQUE_ARM_M, 1.0 / TORQUE_ARM_M, 1.0 / TORQUE_ARM_M])


def pyramid(friction: np.ndarray) -> np.ndarray:
    """Edges ``(P, 3, E)`` of the linearised friction cones of P points with coefficients ``friction``."""
    angle = 2.0 * np.pi * np.arange(PYRAMID_EDGES) / PYRAMID_EDGES
    mu = np.asarray(friction, dtype=np.float64)[:, None]
    return np.stack([mu * np.cos(angle), mu * np.sin(angle), np.ones_like(mu * angle)], axis=1)


def fit_contacts(
    root_force: np.ndarray, jac_root: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Contact forces ``(P, 3)`` within their cones that best supply ``root_force`` (6,), and the residual.

    ``jac_root`` ``(P, 3, 6)``: the root columns of the contacting points' translational Jacobians. The
    residual (6,) is ``root_force`` less what the forces supply, torques divided by :data:`TORQUE_ARM_M`.
    """
    if len(jac_root) == 0:
        return np.zeros((0, 3)), root_force * _ROOT_ROW_SCALE
    # (6, P*E): generalized root force of a unit push along each cone edge of each point.
    basis = np.einsum("pri,pre->ipe", jac_root, edges).reshape(6, -1)
    weights, _ = nnls(basis * _ROOT_ROW_SCALE[:, None], root_force * _ROOT_ROW_SCALE)
    forces = np.einsum("pre,pe->pr", edges, weights.reshape(len(edges), -1))
    residual = (root_force - basis @ weights) * _ROOT_ROW_SCALE
    return forces, residual


def outside_support(point: np.ndarray, support: np.ndarray) -> bool:
    """Whether ``point`` (2,) lies farther than :data:`SUPPORT_MARGIN_M` from the convex hull of ``support``
    ``(P, 2)`` (P >= 1; a hull of one or two points is a point or a segment)."""
    hull = convex_hull(support)
    if len(hull) >= 3:
        edge = np.roll(hull, -1, axis=0) - hull
        rel = point - hull
        if np.all(edge[:, 0] * rel[:, 1] - edge[:, 1] * rel[:, 0] >= 0.0):  # left of every CCW edge
            return False
    return _distance_to_polyline(point, hull) > SUPPORT_MARGIN_M


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``points`` ``(P, 2)``, counter-clockwise (Andrew's monotone chain);
    collinear or repeated points give the segment's ends or the single point."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)  # sorted by x, then y
    if len(pts) <= 2:
        return pts

    def half(seq: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for p in seq:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0.0:
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _distance_to_polyline(point: np.ndarray, vertices: np.ndarray) -> float:
    """Distance from ``point`` to the closed polygon (or segment, or point) through ``vertices``."""
    if len(vertices) == 1:
        return float(np.linalg.norm(point - vertices[0]))
    start, end = vertices, np.roll(vertices, -1, axis=0)
    seg = end - start
    length2 = np.maximum(np.sum(seg**2, axis=1), 1e-18)
    s = np.clip(np.sum((point - start) * seg, axis=1) / length2, 0.0, 1.0)
    return float(np.min(np.linalg.norm(start + s[:, None] * seg - point, axis=1)))
