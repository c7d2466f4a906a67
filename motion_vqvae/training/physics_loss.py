"""Physics-aware training losses on the decoded soles and centre of mass, through the body-space kinematics.

Why: the feature and body-space losses score joints and bodies as a pose, not as a robot standing on a
floor. A decoded foot that should be planted drifts by a few millimetres a frame (foot skate, about 1.8x the
reference's), sinks or hovers, and the centre of mass leaves the support more often than in the data. Each
term here measures one of these on the decoded window against the reference window, on the bodies that
:meth:`BodySpaceLoss.posed` already computed for the step (no second forward-kinematics pass):

* ``foot_skate_mm`` (``loss_foot_skate``): horizontal velocity error (mm/frame) of the decoded sole
  points against the reference's, on frames where the *reference's* sole point is in contact (below
  :data:`CONTACT_HEIGHT_M` on this frame and the next). Gating by the reference, not the decoded foot,
  means the decoder cannot escape the term by lifting the foot. The error, not the decoded speed itself:
  the probes (docs in the README) found that asking planted soles for zero speed, which the reference's
  own 3 mm/frame of skate contradicts, fights the reconstruction (49 mm ``mpjpe_local`` against 31 at
  equal budget, with the decoded soles stiller than the data's), while a perfect reconstruction scores
  zero on the error.
* ``foot_ground_mm`` (``loss_foot_ground``): on the reference's contact frames, the height error of the
  decoded sole point (neither sinking nor hovering where the reference stands), plus on every frame how
  far a decoded sole point is below the floor ``z = 0`` beyond the reference's own penetration (retargeted
  data sinks a few millimetres; the decoder is not asked to be cleaner than its data).
* ``com_support_mm`` (``loss_com``): the horizontal centre of mass relative to the mean of the sole
  points (the middle of the support), decoded against reference: a pose whose arms are right but whose
  mass leans out of the support differs here, and ``com_outside_support`` follows this offset.

No joint-range term: the model's output head keeps every decoded joint inside its range by construction
(``VQVAE``'s ``joint_range``), so such a term would always be zero.

Sole points are read from the MJCF: the bottom corners of each box and the lowest point of each sphere
that collides on a foot body (a body whose name holds ``ankle_roll`` or ``foot``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import mujoco
import numpy as np
import torch

from motion_vqvae.errors import InvalidValue
from motion_vqvae.features import FeatureLayout
from motion_vqvae.robot_model import load_model, resolve_mjcf
from motion_vqvae.rotations import quat_to_matrix
from motion_vqvae.training.body_loss import BodySpaceLoss, Posed, TorchKinematics

# Each physics term's name in metrics.jsonl -> its weight's config key.
PHYSICS_TERMS = {
    "foot_skate_mm": "loss_foot_skate",
    "foot_ground_mm": "loss_foot_ground",
    "com_support_mm": "loss_com",
}
CONTACT_HEIGHT_M = 0.03  # a reference sole point this close to the floor is standing on it
_MM = 1000.0
_FLOOR_MM = 0.1  # smooth floor of the norms, as body_loss._mean_norm_mm (gradients of tiny errors are noise)
_FOOT_NAMES = ("ankle_roll", "foot")


def sole_points(mjcf: str | Path | None) -> tuple[list[int], np.ndarray]:
    """``(body indices among TorchKinematics' bodies, points (P, 3) in each body's frame)`` of the soles."""
    path = resolve_mjcf(mjcf)
    model = load_model(path)
    bodies: list[int] = []
    points: list[np.ndarray] = []
    for geom in range(model.ngeom):
        body = int(model.geom_bodyid[geom])
        if not any(word in model.body(body).name for word in _FOOT_NAMES) or not model.geom_contype[geom]:
            continue
        rotation = quat_to_matrix(np.roll(model.geom_quat[geom], -1))  # MuJoCo's wxyz -> xyzw
        size = model.geom_size[geom]
        if model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_BOX:
            corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * size
            local = model.geom_pos[geom] + corners @ rotation.T
            local = local[np.argsort(local[:, 2])[:4]]  # the bottom face (foot boxes lie flat at rest)
        elif model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_SPHERE:
            local = (model.geom_pos[geom] - np.array([0.0, 0.0, size[0]]))[None]
        else:
            continue
        bodies += [body - 1] * len(local)
        points.append(local)
    if len({b for b in bodies}) < 2:
        raise InvalidValue(
            f"{path}: found no box or sphere collision geoms on two foot bodies (names holding "
            f"{list(_FOOT_NAMES)}), so the physics losses cannot place the soles; set mjcf to a robot "
            "with foot geoms, or turn them off with loss_foot_skate=0 loss_foot_ground=0 loss_com=0"
        )
    return bodies, np.concatenate(points)


class PhysicsLoss(torch.nn.Module):
    """``forward(posed, reference) -> {"foot_skate_mm", "foot_ground_mm", "com_support_mm"}`` (float64)."""

    def __init__(self, kinematics: TorchKinematics, mjcf: str | Path | None) -> None:
        super().__init__()
        bodies, points = sole_points(mjcf)
        model = load_model(resolve_mjcf(mjcf))
        if model.nbody - 1 != len(kinematics.body_names):
            raise InvalidValue(
                f"{mjcf}: {model.nbody - 1} bodies, the kinematics {len(kinematics.body_names)}"
            )
        mass = model.body_mass[1:]
        self.register_buffer("sole_bodies", torch.as_tensor(bodies, dtype=torch.long), persistent=False)
        self.register_buffer("sole_points", torch.as_tensor(points, dtype=torch.float64), persistent=False)
        self.register_buffer(
            "mass", torch.as_tensor(mass / mass.sum(), dtype=torch.float64), persistent=False
        )
        inertial = torch.as_tensor(model.body_ipos[1:], dtype=torch.float64)
        self.register_buffer("inertial", inertial, persistent=False)

    def soles(self, posed: Posed) -> torch.Tensor:
        """World sole points ``(B, T, P, 3)``."""
        rot = posed.rotations[..., self.sole_bodies, :, :]  # (B, T, P, 3, 3)
        return posed.world[..., self.sole_bodies, :] + (rot @ self.sole_points[..., None])[..., 0]

    def com(self, posed: Posed) -> torch.Tensor:
        """World centre of mass ``(B, T, 3)``."""
        centres = posed.world + (posed.rotations @ self.inertial[..., None])[..., 0]  # (B, T, nb, 3)
        return (centres * self.mass[:, None]).sum(-2)

    def forward(self, posed: Posed, reference: Posed) -> dict[str, torch.Tensor]:
        soles, soles_ref = self.soles(posed), self.soles(reference)
        planted = soles_ref[..., 2] < CONTACT_HEIGHT_M  # (B, T, P)
        still = planted[:, 1:] & planted[:, :-1]  # in contact on this frame and the next
        slide = _steps(soles) - _steps(soles_ref)  # (B, T-1, P, 2) metres per frame
        height = soles[..., 2] - soles_ref[..., 2]
        below = torch.relu(soles_ref[..., 2].clamp_max(0.0) - soles[..., 2])  # deeper than the reference
        support = self.com(posed)[..., :2] - soles[..., :2].mean(-2)
        support_ref = self.com(reference)[..., :2] - soles_ref[..., :2].mean(-2)
        return {
            "foot_skate_mm": _masked_mean(_norm_mm(slide), still),
            "foot_ground_mm": _masked_mean(_norm_mm(height[..., None]), planted) + _MM * below.mean(),
            "com_support_mm": _norm_mm(support - support_ref).mean(),
        }


def _steps(soles: torch.Tensor) -> torch.Tensor:
    """Horizontal sole steps ``(B, T-1, P, 2)`` between consecutive frames."""
    return soles[:, 1:, :, :2] - soles[:, :-1, :, :2]


def _norm_mm(d: torch.Tensor) -> torch.Tensor:
    """Norm over the last axis, metres in, mm out, quadratic below ``_FLOOR_MM``."""
    return torch.sqrt((_MM * d).pow(2).sum(-1) + _FLOOR_MM**2)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; zero (with a gradient path) for a window without any."""
    return (values * mask).sum() / mask.sum().clamp_min(1)


class BodyLosses(NamedTuple):
    """One forward-kinematics pass per step feeds both the body-space and the physics losses."""

    body: BodySpaceLoss
    physics: PhysicsLoss | None

    def __call__(self, recon: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term of ``recon`` against ``x`` (normalized windows ``(B, T, F)``), float32 scalars."""
        posed = self.body.posed(recon)
        with torch.no_grad():
            reference = self.body.posed(x)
        terms = dict(zip(("body_accel_mm", "body_pos_mm"), self.body.compare(posed, reference), strict=True))
        if self.physics is not None:
            terms.update(self.physics(posed, reference))
        return {k: v.float() for k, v in terms.items()}


def body_losses(
    cfg: Any, layout: FeatureLayout, mjcf: str | Path | None, fps: float, device: torch.device
) -> BodyLosses | None:
    """The forward-kinematics losses ``cfg`` weighs (body space, and physics when any of its weights is
    positive); None when none is, so a run without them pays nothing."""
    physics = any(getattr(cfg, key) > 0 for key in PHYSICS_TERMS.values())
    if cfg.loss_body_accel == 0 and cfg.loss_body_pos == 0 and not physics:
        return None
    body = BodySpaceLoss(layout, mjcf, fps).to(device)
    return BodyLosses(body, PhysicsLoss(body.kinematics, mjcf).to(device) if physics else None)


def physics_ramp(iteration: int, total_iter: int, warmup: float) -> float:
    """Factor of the physics weights at ``iteration``: rising linearly from 0 to 1 over the first ``warmup``
    share of ``total_iter``. Probes found that weighed from the first step, they hold the decoder near a
    stiff mean pose (planted soles are cheapest to match there) and its poses are learned at half speed."""
    span = warmup * total_iter
    return 1.0 if span <= 0 else min(1.0, iteration / span)
