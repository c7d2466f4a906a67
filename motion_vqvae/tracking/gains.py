"""Armature-based PD gains for the tracker, derived the way BeyondMimic derives them.

A joint's reflected rotor inertia (armature) dominates its effective inertia, so gains chosen for a fixed
closed-loop natural frequency ``omega`` and damping ratio ``zeta`` are ``kp = armature * omega**2`` and
``kd = 2 * zeta * armature * omega``. BeyondMimic uses ``omega = 2 pi 10 Hz`` and ``zeta = 2`` (overdamped:
the policy, not the servo, makes the motion crisp), which is stable at 200 Hz physics: ``omega * dt = 0.31``
and the damping is integrated implicitly (the servo is a MuJoCo position actuator, see
:func:`make_position_servos`).

The project's MJCF carries one placeholder armature (0.01) for every joint. The tracker sets each joint's
armature from the Unitree motor that drives it (the table below, BeyondMimic's ``robots/g1.py``), so the
simulated rotor inertia and the gains agree, as in BeyondMimic's MDP. Ankles and the waist's roll/pitch are
driven by two 5020 motors through a linkage: twice the armature.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from motion_vqvae.errors import InvalidValue

NATURAL_FREQUENCY = 10.0 * 2.0 * math.pi
"""Closed-loop natural frequency of every joint servo, rad/s (10 Hz)."""
DAMPING_RATIO = 2.0
"""Servo damping ratio (overdamped)."""
ACTION_SCALE_SHARE = 0.25
"""A unit action moves the target by ``0.25 * effort_limit / kp`` rad (BeyondMimic's action scale)."""

ARMATURE_5020 = 0.003609725
ARMATURE_7520_14 = 0.010177520
ARMATURE_7520_22 = 0.025101925
ARMATURE_4010 = 0.00425

# (joint-name fragment, armature kg m^2), first match wins; every G1 joint must match one.
MOTOR_ARMATURE: tuple[tuple[str, float], ...] = (
    ("hip_pitch", ARMATURE_7520_14),
    ("hip_yaw", ARMATURE_7520_14),
    ("hip_roll", ARMATURE_7520_22),
    ("knee", ARMATURE_7520_22),
    ("ankle", 2.0 * ARMATURE_5020),
    ("waist_yaw", ARMATURE_7520_14),
    ("waist", 2.0 * ARMATURE_5020),
    ("wrist_pitch", ARMATURE_4010),
    ("wrist_yaw", ARMATURE_4010),
    ("shoulder", ARMATURE_5020),
    ("elbow", ARMATURE_5020),
    ("wrist_roll", ARMATURE_5020),
)


def joint_armature(joint_names: list[str]) -> np.ndarray:
    """Per-joint motor armature (kg m^2) from :data:`MOTOR_ARMATURE`; an unknown joint is an error."""
    out = np.empty(len(joint_names))
    for i, name in enumerate(joint_names):
        match = next((a for fragment, a in MOTOR_ARMATURE if fragment in name), None)
        if match is None:
            raise InvalidValue(
                f"tracker gains: no motor armature for joint '{name}'; known fragments: "
                f"{[f for f, _ in MOTOR_ARMATURE]}"
            )
        out[i] = match
    return out


def armature_gains(
    armature: np.ndarray, omega: float = NATURAL_FREQUENCY, zeta: float = DAMPING_RATIO
) -> tuple[np.ndarray, np.ndarray]:
    """``(kp, kd)`` that give each joint natural frequency ``omega`` and damping ratio ``zeta``."""
    return armature * omega**2, 2.0 * zeta * armature * omega


def make_position_servos(
    model: mujoco.MjModel, actuators: np.ndarray, dofs: np.ndarray, kp: np.ndarray, kd: np.ndarray
) -> None:
    """Turn the model's torque motors into position servos ``tau = kp (ctrl - q) - kd dq`` in place.

    MuJoCo then computes the PD law inside ``mj_step`` (no Python per physics step, so several substeps are
    one C call) and the ``implicitfast`` integrator treats ``kd`` implicitly. The joints' own
    ``actfrcrange`` still clips the torque; ``ctrl`` becomes a joint-position target within the joint range.
    """
    joint_ids = model.dof_jntid[dofs]
    model.actuator_gaintype[actuators] = mujoco.mjtGain.mjGAIN_FIXED
    model.actuator_biastype[actuators] = mujoco.mjtBias.mjBIAS_AFFINE
    model.actuator_gainprm[actuators, :3] = np.stack([kp, np.zeros_like(kp), np.zeros_like(kp)], axis=1)
    model.actuator_biasprm[actuators, :3] = np.stack([np.zeros_like(kp), -kp, -kd], axis=1)
    model.actuator_ctrllimited[actuators] = 1
    model.actuator_ctrlrange[actuators] = model.jnt_range[joint_ids]
