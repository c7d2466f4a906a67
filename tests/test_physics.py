"""The feasibility metrics on synthetic motions whose answers are known, and on real clips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from motion_vqvae.data import Motion, load_motions
from motion_vqvae.data.joint_names import G1_29DOF_JOINTS
from motion_vqvae.data.sample_motion import STAND_POSE
from motion_vqvae.errors import InvalidValue
from motion_vqvae.physics import PHYSICS_METRICS, clip_feasibility, feasibility, physics_model
from motion_vqvae.physics.contact import convex_hull, outside_support
from motion_vqvae.rotations import expmap_to_quat, quat_mul, quat_rotate

FPS = 30.0
UPRIGHT = np.array([0.0, 0.0, 0.0, 1.0])
STAND_DOF = np.array([STAND_POSE.get(n, 0.0) for n in G1_29DOF_JOINTS])


def _stand_height() -> float:
    """Pelvis height that puts the stand pose's soles on z = 0."""
    probe = _motion(np.array([[0.0, 0.0, 1.0]]), name="probe")
    return 1.0 - float(physics_model().sweep(probe).soles[0, :, 2].min())


def _motion(
    root_pos: np.ndarray,
    quat: np.ndarray | None = None,
    dof: np.ndarray | None = None,
    *,
    fps: float = FPS,
    name: str = "synthetic",
) -> Motion:
    t = len(root_pos)
    return Motion(
        name,
        fps,
        root_pos,
        np.tile(UPRIGHT, (t, 1)) if quat is None else quat,
        np.tile(STAND_DOF, (t, 1)) if dof is None else dof,
        list(G1_29DOF_JOINTS),
    )


def _standing(frames: int = 60, lift: float = 0.0, fps: float = FPS) -> Motion:
    return _motion(np.tile([0.3, -0.2, _stand_height() + lift], (frames, 1)), fps=fps)


def test_standing_pose_is_feasible():
    m = clip_feasibility(_standing())
    assert set(m) == set(PHYSICS_METRICS)
    assert m["skate_mm"] == pytest.approx(0.0, abs=1e-9)
    assert m["float_mm"] == pytest.approx(0.0, abs=1e-6)
    assert m["penetration_mm"] == pytest.approx(0.0, abs=1e-6)
    assert m["floor_offset_mm"] == pytest.approx(0.0, abs=1e-6)
    assert m["com_outside_support"] == 0.0
    assert m["airborne_share"] == 0.0
    assert m["joint_range_violation"] == 0.0
    assert m["torque_limit_violation"] == 0.0
    assert m["root_residual_bw_p95"] < 1e-3


def test_sliding_feet_skate_by_their_speed_at_30_hz_whatever_the_clip_fps():
    speed = 0.3  # m/s: 10 mm per 30 Hz frame
    frames = 120
    t = np.arange(frames) / 60.0
    pos = np.stack([speed * t, 0 * t, np.full_like(t, _stand_height())], axis=1)
    m = clip_feasibility(_motion(pos, fps=60.0))
    assert m["skate_mm"] == pytest.approx(10.0, rel=1e-6)
    assert m["root_residual_bw_p95"] < 1e-3  # constant velocity needs no force
    assert m["airborne_share"] == 0.0


def test_floating_and_penetrating_bodies():
    floating = clip_feasibility(_standing(lift=0.1))
    assert floating["float_mm"] == pytest.approx(100.0, rel=1e-6)
    assert floating["floor_offset_mm"] == pytest.approx(100.0, rel=1e-6)
    assert floating["penetration_mm"] == 0.0
    assert floating["airborne_share"] == 0.0  # contact is judged against the clip's own floor
    sunk = clip_feasibility(_standing(lift=-0.02))
    assert sunk["penetration_mm"] == pytest.approx(20.0, rel=1e-6)
    assert sunk["float_mm"] == 0.0


def test_free_fall_is_airborne_and_excused_from_float():
    t = np.arange(13) / FPS  # 0.4 s: the soles fall from 1 m to 0.22 m
    height = _stand_height() + 1.0 - 0.5 * 9.81 * t**2
    m = clip_feasibility(_motion(np.stack([0 * t, 0 * t, height], axis=1)))
    assert m["float_mm"] == 0.0
    assert m["airborne_share"] == 1.0
    assert math.isnan(m["com_outside_support"]) and math.isnan(m["skate_mm"])
    assert m["root_residual_bw_p95"] < 0.01  # nothing has to push a falling body
    hovering = clip_feasibility(_motion(np.tile([0.0, 0.0, height[0]], (13, 1))))
    assert hovering["float_mm"] == pytest.approx(1000.0, rel=1e-6)  # still at 1 m: not excused
    assert hovering["airborne_share"] == 0.0  # it stands on its own (raised) floor


def test_joint_beyond_its_range():
    dof = np.tile(STAND_DOF, (40, 1))
    dof[:10, G1_29DOF_JOINTS.index("left_ankle_roll_joint")] = 0.3  # range +-0.2618
    m = clip_feasibility(_motion(np.tile([0.0, 0.0, _stand_height()], (40, 1)), dof=dof))
    assert m["joint_range_violation"] == pytest.approx(0.25)


def test_leaning_past_the_toes_is_outside_the_support_and_needs_a_residual():
    standing = _standing(30)
    toe = physics_model().sweep(standing).soles[0, :, 0].max()
    lean = expmap_to_quat(np.array([0.0, 0.5, 0.0]))  # 29 degrees forward about +y
    pivot = np.array([toe, 0.0, 0.0])
    pos = pivot + quat_rotate(np.tile(lean, (30, 1)), standing.root_pos - pivot)
    m = clip_feasibility(_motion(pos, quat_mul(np.tile(lean, (30, 1)), standing.root_quat)))
    assert m["com_outside_support"] == 1.0
    assert m["root_residual_bw_p95"] > 0.05
    assert m["airborne_share"] == 0.0


def test_support_polygon_geometry():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    assert len(convex_hull(square)) == 4
    assert not outside_support(np.array([0.5, 0.5]), square)
    assert not outside_support(np.array([1.005, 0.5]), square)  # within the margin
    assert outside_support(np.array([1.2, 0.5]), square)
    segment = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert not outside_support(np.array([0.5, 0.0]), segment)
    assert outside_support(np.array([0.5, 0.1]), segment)


def test_short_clips_and_bad_input():
    m = clip_feasibility(_standing(2))
    assert math.isnan(m["root_residual_bw_p95"]) and m["skate_mm"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InvalidValue, match="no frames"):
        clip_feasibility(_standing(0))
    renamed = _standing(5)
    renamed.joint_names = ["not_a_joint", *G1_29DOF_JOINTS[1:]]
    with pytest.raises(InvalidValue, match="not_a_joint"):
        clip_feasibility(renamed)


def test_set_means_weigh_clips_equally_and_skip_undefined_values():
    t = np.arange(3) / FPS
    fall = _motion(np.stack([0 * t, 0 * t, 3.0 - 4.905 * t**2], axis=1), name="fall")  # skate undefined
    means = feasibility([_standing(lift=0.1), _standing(), fall])
    assert means["skate_mm"] == pytest.approx(0.0, abs=1e-9)
    assert means["airborne_share"] == pytest.approx(1 / 3)


def test_real_clips_are_in_a_sane_range(g1_moves_dir):
    means = feasibility(load_motions(g1_moves_dir)[:3])
    assert 0.5 < means["skate_mm"] < 15.0
    assert abs(means["floor_offset_mm"]) < 40.0
    assert means["penetration_mm"] < 2.0 and means["float_mm"] < 40.0
    assert 0.05 < means["com_outside_support"] < 0.9
    assert means["airborne_share"] < 0.1
    assert means["joint_range_violation"] < 0.01
    assert 0.01 < means["root_residual_bw_p95"] < 1.0
    assert means["torque_limit_violation"] < 0.1
