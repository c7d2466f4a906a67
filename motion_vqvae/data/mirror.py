"""Left-right mirroring of humanoid motion: a free doubling of training data for a symmetric robot.

Reflection across the body's sagittal plane (world y -> -y) swaps ``left_*`` and ``right_*`` joints and
negates rotations about x (roll) and z (yaw); rotations about y (pitch, knee, elbow) keep their sign. This
holds for robots whose left and right kinematic chains are mirror images with roll/pitch/yaw-named joints
about their local x/y/z axes, as the Unitree G1 (checked by forward kinematics in the tests).
"""

from __future__ import annotations

import numpy as np

from motion_vqvae.data.motion import Motion
from motion_vqvae.errors import InvalidValue


def mirror_joint_map(joint_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(source index, sign) per joint: mirrored ``dof[:, i] = sign[i] * dof[:, index[i]]``."""
    position = {name: i for i, name in enumerate(joint_names)}
    index, sign = [], []
    for name in joint_names:
        if name.startswith("left_"):
            partner = "right_" + name[len("left_") :]
        elif name.startswith("right_"):
            partner = "left_" + name[len("right_") :]
        else:
            partner = name
        if partner not in position:
            raise InvalidValue(
                f"cannot mirror joint '{name}': its partner '{partner}' is not among the joints; "
                "mirroring needs both sides (set mirror_augment: false for asymmetric robots)"
            )
        index.append(position[partner])
        sign.append(-1.0 if ("_roll" in name or "_yaw" in name) else 1.0)
    return np.asarray(index), np.asarray(sign)


def mirror_motion(motion: Motion, suffix: str = "_mirrored") -> Motion:
    """The same clip performed mirror-image: y negated, left and right swapped, roll and yaw negated."""
    if not motion.joint_names:
        raise InvalidValue(f"clip '{motion.name}': mirroring needs joint names to pair left and right joints")
    index, sign = mirror_joint_map(motion.joint_names)
    root_pos = motion.root_pos * np.array([1.0, -1.0, 1.0])
    # Reflection M = diag(1, -1, 1) maps rotation R to M R M: axis (x, y, z) -> (-x, y, -z), same angle.
    root_quat = motion.root_quat * np.array([-1.0, 1.0, -1.0, 1.0])
    return Motion(
        name=motion.name + suffix,
        fps=motion.fps,
        root_pos=root_pos,
        root_quat=root_quat,
        dof=motion.dof[:, index] * sign,
        joint_names=motion.joint_names,
    )
