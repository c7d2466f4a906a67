"""Losses on world body positions, the space the metrics score, through differentiable forward kinematics.

Why: the feature-space losses weigh each joint angle alone, but ``accel_error_mm`` is scored on world body
positions, where the hands dominate (lever arms) and a planted foot is still only because the root's
motion and the leg joints cancel. A per-feature loss never sees either: decoded feet jitter where the
reference's are still (ankle accelerations about 1.7x the reference's with feature losses alone).
Here each training window's features, decoded and reference, are integrated into a root trajectory (from
the origin, heading 0, exactly as :meth:`FeatureLayout.to_motion` does from a start pose) and put through
the robot's kinematic tree in torch, so the loss can score body accelerations and root-relative body
positions in millimetres, like the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import mujoco
import numpy as np
import torch

from motion_vqvae.errors import InvalidValue
from motion_vqvae.features import FeatureLayout
from motion_vqvae.robot_model import body_names, free_joint_id, hinge_joint_names, load_model, resolve_mjcf
from motion_vqvae.rotations import quat_to_matrix

_MM = 1000.0
_FLOOR_M = 1e-4  # see _mean_norm_mm


def _cross_matrix(v: np.ndarray) -> np.ndarray:
    """The matrix ``K`` with ``K @ u = v x u``."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def expmap_matrix(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of rotation vectors ``(..., 3)``; smooth at 0 (Taylor terms below 1e-4 rad)."""
    theta2 = (r * r).sum(-1)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    zero = torch.zeros_like(r[..., 0])
    k = torch.stack(
        [zero, -r[..., 2], r[..., 1], r[..., 2], zero, -r[..., 0], -r[..., 1], r[..., 0], zero], dim=-1
    ).reshape(*r.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def sixd_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from the 6D representation (first two columns, Gram-Schmidt), as ``sixd_to_quat``."""
    a, b = d6[..., :3], d6[..., 3:]
    c0 = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    b = b - (c0 * b).sum(-1, keepdim=True) * c0
    c1 = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return torch.stack([c0, c1, torch.linalg.cross(c0, c1)], dim=-1)


class TorchKinematics(torch.nn.Module):
    """World positions of every body but the world, as ``ForwardKinematics.body_positions``, in torch.

    Supports what motion MJCFs use: one free joint on the root body, hinge joints, and fixed bodies.
    Model joints that ``joint_names`` lacks stay at their reference pose, as in ``ForwardKinematics``.
    """

    def __init__(self, mjcf: str | Path | None, joint_names: list[str]) -> None:
        super().__init__()
        path = resolve_mjcf(mjcf)
        model = load_model(path)
        root_joint = free_joint_id(model, path)
        self.root_body = int(model.jnt_bodyid[root_joint]) - 1  # index among the returned bodies
        column = {name: i for i, name in enumerate(joint_names)}
        hinges = set(hinge_joint_names(model))
        unknown = [name for name in joint_names if name not in hinges]
        if unknown:
            raise InvalidValue(
                f"{path}: joints {unknown} are not in this model, so the body-space loss cannot place them; "
                "set mjcf to your robot's MJCF, or turn the loss off with loss_body_accel=0 loss_body_pos=0"
            )
        # Per body: parent, fixed offset and rotation in the parent frame, and its hinge (dof column, zero
        # angle, K and K^2 of the axis for Rodrigues' formula, anchor). Identity rotations and zero anchors
        # are skipped in forward(): most of a humanoid's bodies have both, and the loss runs every step.
        self.parents: list[int] = []
        self.hinge_columns: list[int | None] = []
        self.zero_angles: list[float] = []
        self.has_rotation: list[bool] = []
        self.has_anchor: list[bool] = []
        offsets, rotations, cross, cross2, anchors = [], [], [], [], []
        for body in range(1, model.nbody):
            first = int(model.body_jntadr[body])
            joints = list(range(first, first + int(model.body_jntnum[body])))
            hinge = [j for j in joints if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
            if len(joints) > 1 or (joints and not hinge and body - 1 != self.root_body):
                raise InvalidValue(
                    f"{path}: body '{model.body(body).name}' has joints of a kind the body-space loss does "
                    "not model (only one hinge per body, or the root's free joint); set loss_body_accel=0 "
                    "and loss_body_pos=0"
                )
            self.parents.append(int(model.body_parentid[body]) - 1)
            offsets.append(model.body_pos[body])
            rotation = quat_to_matrix(np.roll(model.body_quat[body], -1))  # MuJoCo's wxyz -> xyzw
            rotations.append(rotation)
            self.has_rotation.append(not np.allclose(rotation, np.eye(3), atol=1e-12))
            joint = hinge[0] if hinge else None
            self.hinge_columns.append(column.get(model.joint(joint).name) if joint is not None else None)
            zero = float(model.qpos0[model.jnt_qposadr[joint]]) if joint is not None else 0.0
            self.zero_angles.append(zero)
            k = _cross_matrix(model.jnt_axis[joint] if joint is not None else np.zeros(3))
            cross.append(k)
            cross2.append(k @ k)
            anchors.append(model.jnt_pos[joint] if joint is not None else np.zeros(3))
            self.has_anchor.append(bool(np.any(anchors[-1] != 0)))
        self.body_names = body_names(model)
        for name, values in (
            ("offsets", offsets),
            ("rotations", rotations),
            ("cross", cross),
            ("cross2", cross2),
            ("anchors", anchors),
        ):
            tensor = torch.as_tensor(np.asarray(values), dtype=torch.float64)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, root_pos: torch.Tensor, root_rot: torch.Tensor, dof: torch.Tensor) -> torch.Tensor:
        """Body positions ``(..., B, 3)`` from root positions ``(..., 3)``, root rotation matrices
        ``(..., 3, 3)`` and joint angles ``(..., N)`` in ``joint_names`` order."""
        return self.pose(root_pos, root_rot, dof)[0]

    def pose(
        self, root_pos: torch.Tensor, root_rot: torch.Tensor, dof: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Body positions ``(..., B, 3)`` and rotation matrices ``(..., B, 3, 3)``, as :meth:`forward`."""
        positions: list[torch.Tensor] = []
        frames: list[torch.Tensor] = []
        for i, parent in enumerate(self.parents):
            if i == self.root_body:
                pos, rot = root_pos, root_rot
            else:
                parent_pos = positions[parent] if parent >= 0 else torch.zeros_like(root_pos)
                parent_rot = frames[parent] if parent >= 0 else torch.eye(3).to(root_rot).expand_as(root_rot)
                pos = parent_pos + parent_rot @ self.offsets[i]
                rot = parent_rot @ self.rotations[i] if self.has_rotation[i] else parent_rot
                column = self.hinge_columns[i]
                if column is not None:
                    angle = (dof[..., column] - self.zero_angles[i])[..., None, None]
                    turn = torch.sin(angle) * self.cross[i] + (1.0 - torch.cos(angle)) * self.cross2[i]
                    turned = rot + rot @ turn  # rot @ (I + sin K + (1 - cos) K^2), Rodrigues
                    if self.has_anchor[i]:  # the hinge turns about its anchor, not the body origin
                        pos = pos + rot @ self.anchors[i] - turned @ self.anchors[i]
                    rot = turned
            positions.append(pos)
            frames.append(rot)
        return torch.stack(positions, dim=-2), torch.stack(frames, dim=-3)


class Posed(NamedTuple):
    """A window's bodies: world positions ``(B, T, nb, 3)``, heading-frame positions relative to the root
    (same shape) and world rotation matrices ``(B, T, nb, 3, 3)``, float64."""

    world: torch.Tensor
    local: torch.Tensor
    rotations: torch.Tensor


class BodySpaceLoss(torch.nn.Module):
    """Body acceleration and root-relative body position errors (mm) of decoded against reference windows.

    ``forward(recon, x)`` takes normalized feature windows ``(B, T, F)`` and returns
    ``(accel, position)``: the mean norm of the difference of world body accelerations (mm/frame^2, what
    ``accel_error_mm`` scores) and of body positions relative to the root in its heading frame (mm, what
    ``mpjpe_local_mm`` scores). The reference side carries no gradient.

    The kinematics run in float64: an acceleration is a second difference of positions a metre or more from
    the window's origin, and float32 rounding there (about 1e-4 mm) still moved a ``torchrun`` job's
    parameters 1e-4 away from one process's in 20 steps. float64 costs about 20 ms more per step on one
    CPU thread.
    """

    def __init__(self, layout: FeatureLayout, mjcf: str | Path | None, fps: float) -> None:
        super().__init__()
        if layout.normalizer is None or not layout.joint_names:
            raise ValueError("BodySpaceLoss needs a fitted layout with joint names (set up the agent first)")
        self.layout = layout
        self.fps = float(fps)
        self.kinematics = TorchKinematics(mjcf, list(layout.joint_names))
        norm = layout.normalizer
        self.register_buffer("mean", torch.as_tensor(norm.mean, dtype=torch.float64), persistent=False)
        self.register_buffer("std", torch.as_tensor(norm.std, dtype=torch.float64), persistent=False)

    def bodies(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World body positions ``(B, T, nb, 3)`` and root-relative heading-frame positions, float64."""
        posed = self.posed(x)
        return posed.world, posed.local

    def posed(self, x: torch.Tensor) -> Posed:
        """The window's bodies (world and heading-frame positions, world rotations), float64."""
        f = x.double() * self.std + self.mean
        s = self.layout.slices
        step = 1.0 / self.fps
        yaw = (torch.cumsum(f[..., s["yaw_rate"]][..., 0], dim=-1) - f[..., s["yaw_rate"]][..., 0]) * step
        heading = _yaw_matrix(yaw)
        vel = (heading @ f[..., s["root_lin_vel"], None])[..., 0]
        xy = (torch.cumsum(vel[..., :2], dim=-2) - vel[..., :2]) * step
        root_pos = torch.cat([xy, f[..., s["root_height"]]], dim=-1)
        tilt = f[..., s["root_tilt"]]
        tilt_rot = expmap_matrix(tilt) if self.layout.prefer_expmap else sixd_matrix(tilt)
        root_rot = heading @ tilt_rot
        world, rotations = self.kinematics.pose(root_pos, root_rot, f[..., s["dof_pos"]])
        # The metrics' heading frame is the yaw of the whole root rotation (tilt included), not the
        # integrated heading: they differ when a decoded tilt carries a little yaw.
        facing = _yaw_matrix(torch.atan2(root_rot[..., 1, 0], root_rot[..., 0, 0]))
        local = ((world - root_pos[..., None, :])[..., None, :] @ facing[..., None, :, :])[..., 0, :]
        return Posed(world, local, rotations)

    def forward(self, recon: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posed = self.posed(recon)
        with torch.no_grad():
            reference = self.posed(x)
        accel, position = self.compare(posed, reference)
        return accel.to(recon.dtype), position.to(recon.dtype)

    def compare(self, posed: Posed, reference: Posed) -> tuple[torch.Tensor, torch.Tensor]:
        """``(accel, position)`` errors (float64 scalars) of decoded bodies against the reference's."""
        accel = _second_difference(posed.world) - _second_difference(reference.world)
        return _mean_norm_mm(accel), _mean_norm_mm(posed.local - reference.local)


def _yaw_matrix(yaw: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=-1).reshape(*yaw.shape, 3, 3)


def _second_difference(p: torch.Tensor) -> torch.Tensor:
    return p[:, 2:] - 2.0 * p[:, 1:-1] + p[:, :-2]


def _mean_norm_mm(d: torch.Tensor) -> torch.Tensor:
    """Mean norm of ``d`` (metres) in mm, with a smooth floor of ``_FLOOR_M``.

    A norm's gradient is the error's direction, which for errors of a few micrometres is rounding noise:
    it made two ``torchrun`` ranks and one process drift apart by 5e-4 in 20 steps. Below the floor
    (0.1 mm, or 0.1 mm/frame^2) the loss is quadratic instead; above it the loss is the norm to within
    ``floor^2 / (2 norm)`` (0.003 mm at 1.7 mm).
    """
    return _MM * torch.sqrt((d * d).sum(-1) + _FLOOR_M**2).mean()
