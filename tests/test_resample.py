"""Resampling: exact frames on integer ratios, slerp/lerp in between, valid quaternions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.data import Motion, load_motions, resample, sample_motion_path
from motion_vqvae.rotations import quat_from_yaw, quat_slerp


def test_60_to_30_keeps_every_second_frame_bitwise(g1_moves_dir: Path) -> None:
    for path in sorted(g1_moves_dir.glob("*.csv"))[:6]:
        motion = load_motions(path, jump_threshold=None)[0]
        half = resample(motion, 30)
        assert half.fps == 30.0 and half.num_frames == (motion.num_frames + 1) // 2
        assert np.array_equal(half.dof, motion.dof[::2])
        assert np.array_equal(half.root_pos, motion.root_pos[::2])
        assert np.array_equal(half.root_quat, motion.root_quat[::2])


def test_upsampling_interpolates_midpoints() -> None:
    motion = load_motions(sample_motion_path())[0]
    double = resample(motion, 60)
    assert double.num_frames == 2 * motion.num_frames - 1
    assert np.array_equal(double.dof[::2], motion.dof)
    np.testing.assert_allclose(double.dof[1::2], 0.5 * (motion.dof[:-1] + motion.dof[1:]), atol=1e-15)
    mid = quat_slerp(motion.root_quat[:-1], motion.root_quat[1:], np.full(motion.num_frames - 1, 0.5))
    np.testing.assert_allclose(double.root_quat[1::2], mid, atol=1e-12)


def test_root_rotation_uses_slerp_not_lerp() -> None:
    yaw = np.array([0.0, 2.0])  # large step: a linear blend would shrink and mis-time the rotation
    motion = Motion("turn", 1.0, np.zeros((2, 3)), quat_from_yaw(yaw), np.zeros((2, 1)))
    fine = resample(motion, 4)
    np.testing.assert_allclose(fine.root_quat, quat_from_yaw(np.linspace(0, 2, 5)), atol=1e-12)


def test_non_integer_ratio_stays_inside_the_clip() -> None:
    motion = load_motions(sample_motion_path())[2]
    out = resample(motion, 50)
    assert out.duration <= motion.duration + 1e-12
    assert out.num_frames == int(np.floor(motion.duration * 50 + 1e-9)) + 1
    np.testing.assert_allclose(np.linalg.norm(out.root_quat, axis=1), 1.0, atol=1e-12)
    assert np.all(np.sum(out.root_quat[1:] * out.root_quat[:-1], axis=1) >= 0)


@pytest.mark.parametrize("bad", [0, -30, float("nan"), "30", True])
def test_bad_target_fps(bad) -> None:
    motion = load_motions(sample_motion_path())[0]
    with pytest.raises(ValueError, match="target_fps"):
        resample(motion, bad)


def test_change_speed_retimes_the_same_poses(g1_moves_dir: Path) -> None:
    from motion_vqvae.agent import augmented
    from motion_vqvae.config_loader import ConfigLoader
    from motion_vqvae.data.resample import change_speed

    motion = load_motions(g1_moves_dir / "M_Move7.csv", target_fps=30)[0]
    fast, slow = change_speed(motion, 1.25), change_speed(motion, 0.8)
    assert fast.fps == slow.fps == motion.fps
    assert fast.num_frames == 572 and slow.num_frames == 893  # (715 - 1) / 1.25 + 1, (715 - 1) / 0.8 + 1
    assert np.array_equal(fast.dof[::4], motion.dof[::5])  # at 1.25x, every 4th frame lands on every 5th
    np.testing.assert_allclose(slow.dof[5], motion.dof[4], atol=1e-12)
    with pytest.raises(ValueError, match="speed must be positive"):
        change_speed(motion, 0.0)
    cfg = ConfigLoader().config.replace(speed_augment=[0.8, 1.25], mirror_augment=True)
    names = [m.name for m in augmented([motion], cfg)]
    assert len(names) == 6 and "M_Move7@x1.25" in names and len(set(names)) == 6
    with pytest.raises(ValueError, match="speed_augment"):
        cfg.replace(speed_augment=[10.0])
