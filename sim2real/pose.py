"""The measured pose a decoder starts from, checked before any target is computed from it.

The safety filter ramps from the robot's measured joint positions, so they are taken as the robot's word
only when they could be a pose of that robot: the right number of joints, finite, and inside each joint's
hardware range (the packaged robot YAML's ``[lower, upper]``; standing in the filter's soft margin is fine).
Anything else is a wrong joint order, a calibration or sensor fault, or a robot outside its range, and is
refused with the joint, its value and its range named.

A robot that really stands a little outside its range (moved there while limp) gets back explicitly:
``recover="ramp"`` accepts joints at most :data:`RAMP_MAX_OUTSIDE` rad outside. The filter then starts at
the measured pose and only ever moves such a joint inward, towards the decoded targets (which lie inside the
range), at up to the velocity limit, accelerating and braking at the acceleration limit: a ramp into the
range. A hold during the ramp stops the joint where it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RECOVERY_MODES = ("ramp",)
RAMP_MAX_OUTSIDE = 0.5
"""rad: farther outside its range is not a pose a joint can be in, so it is refused even with a ramp."""
RANGE_TOLERANCE = 1e-6
"""rad: float32 round trips of a pose at a limit are not outside it."""


def measured_pose(
    current: Any,
    names: Sequence[str],
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    recover: str | None = None,
    robot: str = "the robot",
) -> np.ndarray:
    """``current`` (``[dof]`` or ``[..., dof]``, real order, rad) as float64, or ValueError naming the joint.

    ``lower``/``upper`` are the hardware range per joint; ``recover="ramp"`` accepts joints up to
    :data:`RAMP_MAX_OUTSIDE` outside it (see the module docstring).
    """
    if recover is not None and recover not in RECOVERY_MODES:
        raise ValueError(f"recover must be None or one of {list(RECOVERY_MODES)}, got {recover!r}")
    if current is None:
        raise ValueError(
            "the measured pose is required: pass current=q, the robot's joint positions (real order, rad)"
        )
    try:
        pose = np.array(current, dtype=np.float64)  # a copy: the caller's array is never aliased
    except (TypeError, ValueError) as exc:
        raise ValueError(f"current must be joint positions (numbers, real order, rad): {exc}") from None
    dof = len(names)
    count = pose.shape[-1] if pose.ndim else 1
    if pose.ndim == 0 or count != dof:
        detail = (
            f"no value for {names[count]} (joint {count})"
            if count < dof
            else f"{count - dof} value(s) after the last joint, {names[-1]}"
        )
        raise ValueError(
            f"current has {count} joint values, {robot} has {dof} ({names[0]} ... {names[-1]}, real order): "
            f"{detail}; pass the measured position of every joint"
        )
    rows = pose.reshape(-1, dof)
    outside = np.maximum(lower - rows, rows - upper) - RANGE_TOLERANCE  # > 0: outside; NaN: not finite
    worst = np.where(np.isfinite(rows), outside, np.inf)
    row, joint = np.unravel_index(int(np.argmax(worst)), worst.shape)
    excess = worst[row, joint]
    if not excess > 0 or (recover == "ramp" and excess <= RAMP_MAX_OUTSIDE):
        if excess > 0:
            log.warning("reset: joints outside their range ramp back in (recover='ramp')")
        return pose
    value = rows[row, joint]
    where = f"current{f' row {row}' if rows.shape[0] > 1 else ''}: {names[joint]} = {value:.6g} rad"
    limits = f"its range [{lower[joint]:.6g}, {upper[joint]:.6g}] rad ({robot})"
    others = sorted({names[j] for j in np.flatnonzero(np.any(worst > 0, axis=0)) if j != joint})
    also = f" (also outside or not finite: {others})" if others else ""
    if not np.isfinite(value):
        raise ValueError(f"{where} is not finite, {limits}{also}; check that joint's sensor")
    fix = (
        "pass recover='ramp' to ramp it back into the range at the velocity limit"
        if recover is None and excess <= RAMP_MAX_OUTSIDE
        else f"more than {RAMP_MAX_OUTSIDE} rad outside its range is not a pose the joint can be in: check "
        "the joint order, the encoder calibration and the sensor"
    )
    raise ValueError(f"{where} is outside {limits}{also}; {fix}")
