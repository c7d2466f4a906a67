"""Readers refuse broken files with messages that name the file, row and column; joint jumps are found."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.data import (
    DEFAULT_JUMP_THRESHOLD,
    find_joint_jumps,
    load_motions,
    repair_joint_jumps,
    sample_motion_path,
)


@pytest.fixture(scope="module")
def g1_moves(g1_moves_dir: Path) -> list:
    return load_motions(g1_moves_dir, jump_threshold=None)


def _sample_table() -> np.ndarray:
    return np.load(sample_motion_path())


def _write_csv(path: Path, table: np.ndarray) -> Path:
    np.savetxt(path, table, delimiter=",", fmt="%.17g")
    return path


def test_nan_names_row_and_column(tmp_path: Path) -> None:
    table = _sample_table()[:50, 1:-1].copy()
    table[17, 7 + 3] = np.nan  # left_knee_joint
    path = _write_csv(tmp_path / "nan.csv", table)
    with pytest.raises(ValueError, match=r"nan\.csv.*row 17 .*column 10 \(left_knee_joint\)"):
        load_motions(path, fps=30, quat_order="wxyz")


def test_quaternion_norms(tmp_path: Path) -> None:
    table = _sample_table()[:50, 1:-1].copy()
    table[5, 3:7] *= 1.03  # within tolerance: renormalised
    motion = load_motions(_write_csv(tmp_path / "ok.csv", table), fps=30, quat_order="wxyz")[0]
    np.testing.assert_allclose(np.linalg.norm(motion.root_quat, axis=1), 1.0, atol=1e-12)
    table[9, 3:7] = 0.0
    with pytest.raises(ValueError, match=r"zero\.csv.*row 9 .*norm 0"):
        load_motions(_write_csv(tmp_path / "zero.csv", table), fps=30, quat_order="wxyz")
    table[9, 3:7] = [0.5, 0.1, 0.1, 0.1]
    with pytest.raises(ValueError, match=r"short\.csv.*row 9 .*norm 0.5"):
        load_motions(_write_csv(tmp_path / "short.csv", table), fps=30, quat_order="wxyz")


def test_npy_time_must_increase(tmp_path: Path) -> None:
    table = _sample_table()
    table[100, 0] = table[99, 0]
    np.save(tmp_path / "stuck.npy", table)
    with pytest.raises(ValueError, match=r"stuck\.npy: time column does not increase at row 100"):
        load_motions(tmp_path / "stuck.npy")


def test_npy_flags_and_columns(tmp_path: Path) -> None:
    table = _sample_table()
    table[3, -1] = 0.5
    np.save(tmp_path / "flag.npy", table)
    with pytest.raises(ValueError, match=r"flag\.npy: transition_flag .* row 3"):
        load_motions(tmp_path / "flag.npy")
    np.save(tmp_path / "narrow.npy", _sample_table()[:, :-3])
    with pytest.raises(ValueError, match=r"narrow\.npy: 26 joint columns"):
        load_motions(tmp_path / "narrow.npy")


def test_unknown_quat_order_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quat_order='zyxw'"):
        load_motions(sample_motion_path(), quat_order="zyxw")


def test_npy_read_as_xyzw_is_upside_down(seed_layout_npy: Path) -> None:
    with pytest.raises(ValueError, match=r"seed_layout\.npy clip .*upside down.*quat_order='wxyz'"):
        load_motions(seed_layout_npy, quat_order="xyzw")


def test_jump_threshold_separates_glitches_from_motion(g1_moves) -> None:
    flagged = [m for m in g1_moves if find_joint_jumps(m)]
    # About half of the clips carry retargeting glitches; clean dance/karate motion peaks below 30 rad/s.
    assert 25 <= len(flagged) <= 35
    jumps = [j for m in flagged for j in find_joint_jumps(m)]
    assert max(j.speed for j in jumps) > 100.0
    assert sum("shoulder" in j.joint for j in jumps) > 0.8 * len(jumps)
    fence = next(m for m in g1_moves if m.name == "B_Fence2")
    found = find_joint_jumps(fence, DEFAULT_JUMP_THRESHOLD)
    assert {(j.joint, j.frame) for j in found} == {
        ("right_shoulder_pitch_joint", 507),
        ("right_shoulder_yaw_joint", 507),
    }
    assert all(j.clip == "B_Fence2" and j.speed > DEFAULT_JUMP_THRESHOLD for j in found)


def test_repair_removes_jumps_and_leaves_other_frames(g1_moves) -> None:
    for motion in g1_moves[:20]:
        jumps = find_joint_jumps(motion)
        repaired = repair_joint_jumps(motion)
        assert find_joint_jumps(repaired) == []
        changed = np.argwhere(repaired.dof != motion.dof)
        if not jumps:
            assert changed.size == 0
            continue
        # Every changed value is in a jumping joint, a few frames from one of its jumps.
        for frame, joint in changed:
            near = [abs(frame - j.frame) for j in jumps if j.joint_index == joint]
            assert near and min(near) <= 10, (motion.name, frame, joint)
        np.testing.assert_array_equal(repaired.root_pos, motion.root_pos)


def test_jumps_are_logged_per_clip(g1_moves_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="motion_vqvae.data"):
        motion = load_motions(g1_moves_dir / "B_Fence2.csv", repair_jumps=True)[0]
    (message,) = [r.getMessage() for r in caplog.records]
    assert "B_Fence2" in message and "right_shoulder_yaw_joint at frame 507" in message
    assert "rad/s" in message and "repaired" in message
    assert find_joint_jumps(motion) == []
