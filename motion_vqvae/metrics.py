"""Kinematic reconstruction metrics between a predicted and a reference motion of the same length.

Joint-space error (``dof_rmse_rad``) says how far the angles are; body-position errors say how far that
moves the robot, which is what a viewer or a tracking policy sees: global (world frame), local (root
position removed, heading removed), Procrustes-aligned (pose shape only), acceleration (jitter) and root
drift. :func:`body_metrics` works on precomputed FK so evaluating many clips runs FK on each reference once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.rotations import quat_from_yaw, quat_rotate, quat_yaw

_MM = 1000.0


def _mean_norm(diff: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(diff, axis=-1)))


def to_heading_frame(body_pos: np.ndarray, root_pos: np.ndarray, root_quat: np.ndarray) -> np.ndarray:
    """Body positions ``(T, B, 3)`` relative to the root, with the root's heading (yaw) rotated away."""
    inv_yaw = quat_from_yaw(-quat_yaw(root_quat))  # (T, 4)
    rel = body_pos - root_pos[:, None, :]
    return quat_rotate(np.broadcast_to(inv_yaw[:, None, :], (*rel.shape[:2], 4)), rel)


def procrustes_align(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``pred`` ``(T, B, 3)`` moved by the per-frame similarity transform (rotation, translation, scale)
    that best fits it onto ``ref`` in the least-squares sense (Umeyama's method)."""
    mu_p, mu_r = pred.mean(axis=1, keepdims=True), ref.mean(axis=1, keepdims=True)
    x, y = pred - mu_p, ref - mu_r  # (T, B, 3)
    cov = np.einsum("tbi,tbj->tij", y, x)  # (T, 3, 3): sum over bodies of y x^T
    u, s, vt = np.linalg.svd(cov)
    # Reflection guard: flip the weakest axis when the best orthogonal map would be a mirror.
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    rot = u @ vt  # (T, 3, 3)
    var_x = np.sum(x**2, axis=(1, 2))
    scale = s.sum(axis=1) / np.maximum(var_x, 1e-12)
    return scale[:, None, None] * np.einsum("tij,tbj->tbi", rot, x) + mu_r


def body_metrics(
    pred_body_pos: np.ndarray,
    ref_body_pos: np.ndarray,
    pred_root_pos: np.ndarray,
    ref_root_pos: np.ndarray,
    pred_root_quat: np.ndarray,
    ref_root_quat: np.ndarray,
) -> dict[str, float]:
    """Position metrics in millimetres from world body positions ``(T, B, 3)`` (metres) and root poses.

    Root quaternions are xyzw. ``accel_error_mm`` (mm/frame^2) is NaN for clips shorter than 3 frames.
    """
    if pred_body_pos.shape != ref_body_pos.shape or pred_body_pos.ndim != 3 or pred_body_pos.shape[-1] != 3:
        raise ValueError(
            f"body positions must both be (T, B, 3) with one shape, "
            f"got {pred_body_pos.shape} and {ref_body_pos.shape}"
        )
    t = len(ref_body_pos)
    for name, arr, width in (
        ("pred_root_pos", pred_root_pos, 3),
        ("ref_root_pos", ref_root_pos, 3),
        ("pred_root_quat", pred_root_quat, 4),
        ("ref_root_quat", ref_root_quat, 4),
    ):
        if np.shape(arr) != (t, width):
            raise ValueError(
                f"{name} must be ({t}, {width}) to match the body positions, got {np.shape(arr)}"
            )
    local_pred = to_heading_frame(pred_body_pos, pred_root_pos, pred_root_quat)
    local_ref = to_heading_frame(ref_body_pos, ref_root_pos, ref_root_quat)
    if t >= 3:
        acc_pred = pred_body_pos[2:] - 2.0 * pred_body_pos[1:-1] + pred_body_pos[:-2]
        acc_ref = ref_body_pos[2:] - 2.0 * ref_body_pos[1:-1] + ref_body_pos[:-2]
        accel = _MM * _mean_norm(acc_pred - acc_ref)
    else:
        accel = float("nan")
    return {
        "mpjpe_global_mm": _MM * _mean_norm(pred_body_pos - ref_body_pos),
        "mpjpe_local_mm": _MM * _mean_norm(local_pred - local_ref),
        "pa_mpjpe_mm": _MM * _mean_norm(procrustes_align(pred_body_pos, ref_body_pos) - ref_body_pos),
        "accel_error_mm": accel,
        "root_pos_error_mm": _MM * _mean_norm(np.asarray(pred_root_pos) - np.asarray(ref_root_pos)),
    }


def dof_rmse(pred: Motion, ref: Motion) -> float:
    """Root-mean-square joint angle error (radians) over all frames and joints, matched by joint name."""
    if pred.joint_names != ref.joint_names:
        if sorted(pred.joint_names) != sorted(ref.joint_names):
            raise ValueError(
                f"'{pred.name}' and '{ref.name}' have different joints: only in pred "
                f"{sorted(set(pred.joint_names) - set(ref.joint_names))}, only in ref "
                f"{sorted(set(ref.joint_names) - set(pred.joint_names))}; map both to one joint set first"
            )
        order = [pred.joint_names.index(name) for name in ref.joint_names]
        pred_dof = pred.dof[:, order]
    else:
        pred_dof = pred.dof
    if pred_dof.shape != ref.dof.shape:
        raise ValueError(
            f"'{pred.name}' dof {pred_dof.shape} and '{ref.name}' dof {ref.dof.shape} differ in shape"
        )
    return float(np.sqrt(np.mean((pred_dof - ref.dof) ** 2)))


def motion_metrics(
    pred: Motion,
    ref: Motion,
    mjcf: str | Path | None = None,
    fk: ForwardKinematics | None = None,
    ref_body_pos: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of ``pred`` against ``ref`` (equal length and fps), FK on ``mjcf`` (default: shipped G1).

    Pass ``fk`` to reuse a loaded model across calls (``mjcf`` is then ignored), and ``ref_body_pos``
    (``fk.body_positions(ref)``) when the reference is scored again and again, as a validation clip is.
    """
    if pred.num_frames != ref.num_frames:
        raise ValueError(
            f"pred '{pred.name}' has {pred.num_frames} frames but ref '{ref.name}' has "
            f"{ref.num_frames} frames; metrics need equal-length motions (trim or resample one)"
        )
    if pred.fps != ref.fps:
        raise ValueError(
            f"pred '{pred.name}' is {pred.fps} fps but ref '{ref.name}' is {ref.fps} fps; "
            "resample to one rate"
        )
    if pred.num_frames == 0:
        raise ValueError(f"'{ref.name}' has no frames; metrics need at least one")
    fk = fk if fk is not None else ForwardKinematics(mjcf)
    out = {"dof_rmse_rad": dof_rmse(pred, ref)}
    out.update(
        body_metrics(
            fk.body_positions(pred),
            fk.body_positions(ref) if ref_body_pos is None else ref_body_pos,
            pred.root_pos,
            ref.root_pos,
            pred.root_quat,
            ref.root_quat,
        )
    )
    return out
