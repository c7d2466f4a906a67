"""Per-clip and per-set feasibility metrics (definitions in the package docstring, ``physics/__init__``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue
from motion_vqvae.physics.constants import (
    CONTACT_HEIGHT_M,
    FREE_FALL_ACCEL_FRACTION,
    JOINT_RANGE_TOLERANCE_RAD,
    PHYSICS_METRICS,
    RESIDUAL_PERCENTILE,
)
from motion_vqvae.physics.contact import fit_contacts, outside_support, pyramid
from motion_vqvae.physics.model import PhysicsModel, Trajectory, physics_model

_MM = 1000.0


def clip_feasibility(motion: Motion, model: PhysicsModel | None = None) -> dict[str, float]:
    """The :data:`PHYSICS_METRICS` of one clip (at any fps; resampled to ``PHYSICS_FPS`` inside).

    A share over contact frames is NaN when the clip has none; the dynamics metrics are NaN for clips
    shorter than 3 frames.
    """
    if motion.num_frames == 0:
        raise InvalidValue(f"'{motion.name}' has no frames; the feasibility metrics need at least one")
    model = model if model is not None else physics_model()
    traj = model.sweep(motion)
    lowest = traj.soles[..., 2].min(axis=1)  # (T,) lowest sole point above z = 0
    free_fall = (
        traj.com_acc[:, 2] <= -FREE_FALL_ACCEL_FRACTION * model.gravity
        if traj.com_acc is not None
        else np.zeros(len(lowest), dtype=bool)
    )
    supported = lowest[~free_fall]
    floor = float(np.median(supported)) if len(supported) else 0.0
    contact = traj.soles[..., 2] - floor < CONTACT_HEIGHT_M  # (T, P)
    in_contact = contact.any(axis=1)
    out = {
        "penetration_mm": _MM * float(np.mean(np.maximum(-lowest, 0.0))),
        "float_mm": _MM * float(np.mean(np.where(free_fall, 0.0, np.maximum(lowest, 0.0)))),
        "skate_mm": _skate_mm(traj.soles, contact),
        "floor_offset_mm": _MM * floor,
        "com_outside_support": _com_outside_support(traj, contact, in_contact),
        "airborne_share": float(np.mean(~in_contact)),
        "joint_range_violation": float(np.mean(_beyond(traj.dof, model.lower, model.upper))),
    }
    out.update(_dynamics(traj, contact, model))
    return out


def feasibility_per_clip(motions: Sequence[Motion], mjcf: str | Path | None = None) -> list[dict[str, float]]:
    """:func:`clip_feasibility` of every clip, on one model (``mjcf``; default the shipped G1)."""
    model = physics_model(None if mjcf is None else str(mjcf))
    return [clip_feasibility(m, model) for m in motions]


def set_means(per_clip: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the clips that define it (NaN where none does)."""
    if not per_clip:
        raise InvalidValue("the feasibility of an empty set of clips is undefined; pass at least one clip")
    out = {}
    for name in PHYSICS_METRICS:
        values = [row[name] for row in per_clip if not math.isnan(row[name])]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out


def feasibility(motions: Sequence[Motion], mjcf: str | Path | None = None) -> dict[str, float]:
    """Set means of the :data:`PHYSICS_METRICS` over ``motions`` (each clip weighs the same)."""
    return set_means(feasibility_per_clip(motions, mjcf))


def _beyond(dof: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(T,) whether any joint is beyond its range by more than the tolerance."""
    tol = JOINT_RANGE_TOLERANCE_RAD
    return ((dof < lower - tol) | (dof > upper + tol)).any(axis=1)


def _skate_mm(soles: np.ndarray, contact: np.ndarray) -> float:
    """Mean horizontal step (mm/frame) of sole points in contact at both ends of the step."""
    both = contact[1:] & contact[:-1]  # (T-1, P)
    if not both.any():
        return float("nan")
    step = np.linalg.norm(soles[1:, :, :2] - soles[:-1, :, :2], axis=-1)
    return _MM * float(step[both].mean())


def _com_outside_support(traj: Trajectory, contact: np.ndarray, in_contact: np.ndarray) -> float:
    frames = np.flatnonzero(in_contact)
    if not len(frames):
        return float("nan")
    outside = [outside_support(traj.com[t, :2], traj.soles[t, contact[t], :2]) for t in frames]
    return float(np.mean(outside))


def _dynamics(traj: Trajectory, contact: np.ndarray, model: PhysicsModel) -> dict[str, float]:
    """Contact-fitted root residual (p95, body weights) and the share of frames over a torque limit."""
    if traj.qfrc is None or traj.jac is None:
        return {"root_residual_bw_p95": float("nan"), "torque_limit_violation": float("nan")}
    edges = pyramid(model.sole_friction)
    residual = np.empty(len(contact))
    torque = traj.qfrc[:, model.joint_dofs].copy()  # (T, J), less the fitted contacts' share below
    for t in range(len(contact)):
        points = np.flatnonzero(contact[t])
        jac = traj.jac[t, points]  # (C, 3, nv)
        forces, rest = fit_contacts(traj.qfrc[t, model.root_dofs], jac[..., model.root_dofs], edges[points])
        residual[t] = np.linalg.norm(rest) / model.weight
        torque[t] -= np.einsum("prj,pr->j", jac[..., model.joint_dofs], forces)
    return {
        "root_residual_bw_p95": float(np.percentile(residual, RESIDUAL_PERCENTILE)),
        "torque_limit_violation": float(np.mean((np.abs(torque) > model.torque_limit).any(axis=1))),
    }
