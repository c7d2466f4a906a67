"""Mirroring is exact mirror-image kinematics on the G1 (checked by forward kinematics on real clips)."""

from __future__ import annotations

import numpy as np
import pytest

from motion_vqvae.data import load_motions
from motion_vqvae.data.mirror import mirror_joint_map, mirror_motion
from motion_vqvae.kinematics import ForwardKinematics


def _partner(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def test_mirrored_clip_is_the_mirror_image_of_every_body(g1_moves_dir) -> None:
    clip = load_motions(g1_moves_dir / "B_Fence1.csv", target_fps=30)[0]
    fk = ForwardKinematics()
    original = fk.body_positions(clip)  # (T, B, 3)
    mirrored = fk.body_positions(mirror_motion(clip))
    swap = [fk.body_names.index(_partner(n)) for n in fk.body_names]
    expected = original[:, swap] * np.array([1.0, -1.0, 1.0])
    assert np.abs(mirrored - expected).max() < 1e-3  # the Unitree model is symmetric to ~0.01 mm
    assert np.abs(mirrored - original).max() > 0.1  # and the clip really changed


def test_mirroring_twice_is_identity_and_asymmetric_names_are_refused(g1_moves_dir) -> None:
    clip = load_motions(g1_moves_dir / "M_Move1.csv")[0]
    twice = mirror_motion(mirror_motion(clip))
    np.testing.assert_allclose(twice.dof, clip.dof)
    np.testing.assert_allclose(twice.root_quat, clip.root_quat)
    index, sign = mirror_joint_map(["left_knee_joint", "right_knee_joint", "waist_yaw_joint"])
    assert index.tolist() == [1, 0, 2] and sign.tolist() == [1.0, 1.0, -1.0]
    with pytest.raises(ValueError, match="partner 'right_hand'"):
        mirror_joint_map(["left_hand", "waist_yaw_joint"])
