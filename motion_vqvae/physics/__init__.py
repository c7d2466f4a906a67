"""Physical feasibility of motions on the robot model (numpy + MuJoCo; measures only, never trains).

Every motion is read at its own fps and resampled to :data:`PHYSICS_FPS` (30 Hz) at the edge. The sole
points are the four bottom corners of each foot box of the MJCF (the shipped G1's feet). Heights are
measured against the world floor z = 0, except that contact is judged against the clip's own floor, so a
dataset that hovers a constant 5 cm still has stance phases. Per clip (``clip_feasibility``), and per set as
the mean over clips (``feasibility``):

- ``floor_offset_mm`` (mm): the clip's own floor, the median over frames not in free fall of the lowest sole
  point's height above z = 0 (0 when every frame is in free fall). Positive: the clip hovers.
- ``penetration_mm`` (mm): mean over frames of how far the lowest sole point is below z = 0 (0 above it).
- ``float_mm`` (mm): mean over frames of how far the lowest sole point is above z = 0; frames whose centre
  of mass is in free fall (filtered vertical CoM acceleration <= -:data:`FREE_FALL_ACCEL_FRACTION` g) count 0.
- ``skate_mm`` (mm per frame at 30 Hz): mean horizontal displacement of a sole point between two frames in
  both of which it is in contact (less than :data:`CONTACT_HEIGHT_M` above the clip's floor). NaN without
  contact.
- ``com_outside_support`` (share of contact frames): frames with at least one sole point in contact whose
  CoM ground projection is farther than :data:`SUPPORT_MARGIN_M` from the convex hull of the contacting
  sole points. NaN without contact frames.
- ``airborne_share`` (share of frames): no sole point in contact.
- ``joint_range_violation`` (share of frames): any joint beyond its MJCF range by more than
  :data:`JOINT_RANGE_TOLERANCE_RAD`.
- ``root_residual_bw_p95`` (body weights): velocities and accelerations are central differences on the
  configuration manifold, smoothed by a quadratic Savitzky-Golay fit over :data:`SMOOTHING_WINDOW_S`;
  ``mj_inverse`` without constraints gives the generalized force the motion needs. The contacting sole
  points' forces, each a non-negative sum of the edges of a :data:`PYRAMID_EDGES`-sided friction pyramid
  (the foot geom's friction), are fitted to the root's six rows by non-negative least squares (torques
  divided by :data:`TORQUE_ARM_M`); the residual wrench's norm over the robot's weight, its 95th
  percentile over frames. Plain ``mj_inverse``'s root force would need a body weight whenever the feet
  hover; this needs one only where no floor contact could help.
- ``torque_limit_violation`` (share of frames): any joint torque (inverse dynamics less the fitted
  contact forces' share) beyond the joint's actuator limit (MJCF ``actuatorfrcrange``).

Dynamics metrics are NaN for clips shorter than 3 frames. ``sim2real`` never imports this package.
"""

from motion_vqvae.physics.constants import (
    CONTACT_HEIGHT_M,
    FREE_FALL_ACCEL_FRACTION,
    JOINT_RANGE_TOLERANCE_RAD,
    PHYSICS_FPS,
    PHYSICS_METRICS,
    PYRAMID_EDGES,
    RESIDUAL_PERCENTILE,
    SMOOTHING_WINDOW_S,
    SUPPORT_MARGIN_M,
    TORQUE_ARM_M,
)
from motion_vqvae.physics.feasibility import clip_feasibility, feasibility, feasibility_per_clip, set_means
from motion_vqvae.physics.model import PhysicsModel, physics_model

__all__ = [
    "CONTACT_HEIGHT_M",
    "FREE_FALL_ACCEL_FRACTION",
    "JOINT_RANGE_TOLERANCE_RAD",
    "PHYSICS_FPS",
    "PHYSICS_METRICS",
    "PYRAMID_EDGES",
    "RESIDUAL_PERCENTILE",
    "SMOOTHING_WINDOW_S",
    "SUPPORT_MARGIN_M",
    "TORQUE_ARM_M",
    "PhysicsModel",
    "clip_feasibility",
    "feasibility",
    "feasibility_per_clip",
    "physics_model",
    "set_means",
]
