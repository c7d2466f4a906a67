"""Thresholds and conventions of the feasibility metrics, one named constant each (see ``physics``)."""

from __future__ import annotations

PHYSICS_FPS = 30.0
"""Hz. Every motion is resampled to this rate at the edge, so ``skate_mm`` (mm per frame) and the
finite differences mean the same thing for a 60 fps mocap clip and a 30 fps reconstruction."""

CONTACT_HEIGHT_M = 0.025
"""m above the clip's own floor (``floor_offset_mm``) under which a sole point counts as touching it: a
planted foot tilted by a few degrees still has its sole corners within this band."""

FREE_FALL_ACCEL_FRACTION = 0.7
"""A frame is in free fall when the centre of mass accelerates downwards by at least this fraction of g
(filtered second difference): nothing pushes on the body, so its feet may leave the floor."""

SUPPORT_MARGIN_M = 0.01
"""m. The CoM ground projection is outside the support when it lies farther than this from the convex
hull of the contacting sole points (a hull of one or two points has no area; the margin gives it one)."""

JOINT_RANGE_TOLERANCE_RAD = 1e-4
"""rad beyond an MJCF joint range before a frame counts as a violation (float32 round trips of a value
exactly at the limit stay inside)."""

SMOOTHING_WINDOW_S = 0.2
"""s. Savitzky-Golay window (quadratic) over which velocities and accelerations are fitted: finite
differences of 30 fps data amplify millimetre noise into accelerations of several g."""

TORQUE_ARM_M = 1.0
"""m. Root torques are divided by this lever arm before they are added to root forces, so the residual
wrench is one number in newtons (then body weights)."""

RESIDUAL_PERCENTILE = 95.0
"""Percentile over frames of the contact-fitted root residual (``root_residual_bw_p95``)."""

PYRAMID_EDGES = 4
"""Edges of the linearised friction cone at every contact point (a pyramid, forces as non-negative sums)."""

PHYSICS_METRICS = (
    "penetration_mm",
    "float_mm",
    "skate_mm",
    "floor_offset_mm",
    "com_outside_support",
    "airborne_share",
    "joint_range_violation",
    "root_residual_bw_p95",
    "torque_limit_violation",
)
"""The names every report uses (metrics.json, benchmarks, the prior's evaluation)."""
