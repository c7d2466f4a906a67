"""The robot's joint ranges as the bounded ``dof_pos`` output of ``VQVAE(joint_range=...)`` takes them."""

from __future__ import annotations

from typing import Any

import numpy as np

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.errors import InvalidValue, user_input
from motion_vqvae.features import FeatureLayout
from sim2real import load_robot

JOINT_RANGE_MARGIN = 1e-4  # rad inside each limit: float32 rounding through the normalisation stays inside


def joint_range(cfg: AgentConfig, layout: FeatureLayout) -> dict[str, Any] | None:
    """The robot's joint ranges for the model's bounded ``dof_pos`` output (see ``VQVAE``), or None when
    ``bound_joint_range`` is off.

    Read once, here, from the robot YAML (the ranges the export's safety limits start from) for the
    layout's joints, and stored in the checkpoint's model hyper-parameters in normalised units; nothing
    reads them from the robot again.
    """
    if not cfg.bound_joint_range:
        return None
    if layout.normalizer is None:
        raise ValueError(
            "joint_range needs a fitted feature layout (its normalizer maps radians to features)"
        )
    with user_input():  # sim2real raises builtins for an unknown robot or a broken robot YAML
        robot = load_robot(cfg.robot)
    names = layout.joint_names or list(robot.sim_joint_names)
    unknown = [n for n in names if n not in robot.joints]
    if unknown or len(names) != layout.num_dof:
        raise InvalidValue(
            f"bound_joint_range: joints {unknown or names} of the motion have no range in {robot.source} "
            f"(robot={cfg.robot!r}); set robot to the motion's robot, or --set bound_joint_range=false"
        )
    lower = np.array([robot.joints[n].lower for n in names]) + JOINT_RANGE_MARGIN
    upper = np.array([robot.joints[n].upper for n in names]) - JOINT_RANGE_MARGIN
    dof = layout.slices["dof_pos"]
    mean, std = layout.normalizer.mean[dof], layout.normalizer.std[dof]
    return {
        "columns": [dof.start, dof.stop],
        "lower": ((lower - mean) / std).tolist(),
        "upper": ((upper - mean) / std).tolist(),
    }
