"""Normalized decoder features -> what a robot consumes: joint position targets in the real motor order.

:class:`JointTargetHead` is plain tensor arithmetic (affine, matmul, min/max), so it exports to ONNX inside
``decoder.onnx``/``decoder_step.onnx`` and runs unchanged in torch for token-space RL.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from motion_vqvae.errors import InvalidValue, UnknownKey
from motion_vqvae.features import FeatureLayout
from sim2real import JointMap, RobotDescription


def real_limits(robot: RobotDescription, joint_map: JointMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, upper, velocity)`` per real slot of ``joint_map``, in the real convention.

    A slot driven by sim joint ``i`` takes that joint's limits through ``sign * x + offset`` (the map may
    override the robot YAML's order); an undriven slot takes the YAML's limits for its name, or is pinned
    at the map's fill value when the YAML does not know it (its velocity limit is then the largest
    known one: the slot cannot move anyway, and the manifest stays finite JSON).
    """
    lower = np.full(joint_map.real_dof, joint_map.default)
    upper = lower.copy()
    velocity = np.full(joint_map.real_dof, np.inf)
    names = joint_map.real_joint_names or []
    for j, name in enumerate(names):
        spec = robot.joints.get(name)
        if spec is not None:
            lower[j], upper[j], velocity[j] = spec.lower, spec.upper, spec.velocity
    sim_names = joint_map.sim_joint_names or list(robot.sim_joint_names)
    if len(sim_names) != joint_map.num_sim:
        raise InvalidValue(
            f"joint map has {joint_map.num_sim} sim joints but robot '{robot.name}' names {len(sim_names)}"
        )
    for i, name in enumerate(sim_names):
        spec = robot.joints.get(name)
        if spec is None:
            raise UnknownKey(f"{robot.source}: no limits for sim joint '{name}'; add it under 'joints'")
        j = joint_map.sim_to_real_idx[i]
        a = joint_map.sign[i] * spec.lower + joint_map.offset[i]
        b = joint_map.sign[i] * spec.upper + joint_map.offset[i]
        lower[j], upper[j], velocity[j] = min(a, b), max(a, b), spec.velocity
    velocity[~np.isfinite(velocity)] = velocity[np.isfinite(velocity)].max()
    return lower, upper, velocity


class JointTargetHead(nn.Module):
    """``[B, T, F]`` normalized features -> (``[B, T, real_dof]`` clamped joint targets, ``[B, T, R]`` root).

    Root features are the de-normalized leading columns of the layout (height, tilt, local velocity, yaw
    rate; ``R = layout.slices["dof_pos"].start``). Targets are ``sign * dof + offset`` at mapped real slots
    and the map's fill value elsewhere, then clamped to ``[lower, upper]``.
    """

    def __init__(
        self, layout: FeatureLayout, joint_map: JointMap, lower: np.ndarray, upper: np.ndarray
    ) -> None:
        super().__init__()
        if layout.normalizer is None:
            raise ValueError("JointTargetHead: the feature layout has no normalizer (an untrained layout?)")
        if joint_map.num_sim != layout.num_dof:
            raise ValueError(
                f"JointTargetHead: joint map drives {joint_map.num_sim} sim joints, features have "
                f"{layout.num_dof}; the checkpoint's joint_map and feature_layout disagree"
            )
        dof = layout.slices["dof_pos"]
        self.root_dim = dof.start
        self.dof = (dof.start, dof.stop)
        select = np.zeros((joint_map.num_sim, joint_map.real_dof))
        select[np.arange(joint_map.num_sim), joint_map.sim_to_real_idx] = joint_map.sign
        bias = np.full(joint_map.real_dof, joint_map.default)
        bias[joint_map.sim_to_real_idx] = joint_map.offset

        def buf(name: str, value: np.ndarray) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=torch.float32))

        buf("mean", layout.normalizer.mean)
        buf("std", layout.normalizer.std)
        buf("select", select)  # (n_sim, real_dof)
        buf("bias", bias)
        buf("lower", lower)
        buf("upper", upper)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, T, F)
        x = features * self.std + self.mean
        targets = x[..., self.dof[0] : self.dof[1]] @ self.select + self.bias  # (B, T, real_dof)
        targets = torch.minimum(torch.maximum(targets, self.lower), self.upper)
        return targets, x[..., : self.root_dim]  # (B, T, real_dof), (B, T, R)
