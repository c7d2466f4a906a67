"""Kinematic metrics on a real g1_moves clip: each metric sees exactly the error it is meant to see."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from test_robot_model import read_g1_moves

from motion_vqvae.data.motion import Motion
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.metrics import body_metrics, motion_metrics
from motion_vqvae.robot_model import default_mjcf_path
from motion_vqvae.rotations import quat_from_yaw, quat_mul, quat_rotate

KEYS = {
    "dof_rmse_rad",
    "mpjpe_global_mm",
    "mpjpe_local_mm",
    "pa_mpjpe_mm",
    "accel_error_mm",
    "root_pos_error_mm",
}


@pytest.fixture(scope="module")
def ref(g1_moves_dir: Path) -> Motion:
    return read_g1_moves(g1_moves_dir, "B_AttackKarate.csv").slice(300, 480)


@pytest.fixture(scope="module")
def fk() -> ForwardKinematics:
    return ForwardKinematics()


def _with(ref: Motion, **fields) -> Motion:
    base = {
        "root_pos": ref.root_pos,
        "root_quat": ref.root_quat,
        "dof": ref.dof,
        "joint_names": ref.joint_names,
    }
    return Motion("pred", ref.fps, **{**base, **fields})


def test_identical_motions_score_zero(ref: Motion) -> None:
    metrics = motion_metrics(ref, ref)
    assert set(metrics) == KEYS
    assert all(value == pytest.approx(0.0, abs=1e-9) for value in metrics.values()), metrics


def test_constant_shift(ref: Motion, fk: ForwardKinematics) -> None:
    shift = np.array([0.3, -0.4, 0.12])
    metrics = motion_metrics(_with(ref, root_pos=ref.root_pos + shift), ref, fk=fk)
    norm_mm = 1000.0 * np.linalg.norm(shift)
    assert metrics["mpjpe_global_mm"] == pytest.approx(norm_mm, rel=1e-9)
    assert metrics["root_pos_error_mm"] == pytest.approx(norm_mm, rel=1e-9)
    for key in ("mpjpe_local_mm", "pa_mpjpe_mm", "accel_error_mm", "dof_rmse_rad"):
        assert metrics[key] == pytest.approx(0.0, abs=1e-6), key


def test_rotation_about_z_around_the_root_leaves_local_error_zero(ref: Motion, fk: ForwardKinematics) -> None:
    turn = quat_from_yaw(np.array(0.9))
    pivot = ref.root_pos[0]
    pred = _with(
        ref,
        root_pos=pivot + quat_rotate(turn, ref.root_pos - pivot),
        root_quat=quat_mul(np.broadcast_to(turn, ref.root_quat.shape), ref.root_quat),
    )
    metrics = motion_metrics(pred, ref, fk=fk)
    assert metrics["mpjpe_local_mm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["mpjpe_global_mm"] > 100.0  # the motion travels, so turning it moves the bodies


def test_joint_offset_gives_that_rmse_and_moves_bodies(ref: Motion, fk: ForwardKinematics) -> None:
    metrics = motion_metrics(_with(ref, dof=ref.dof + 0.05), ref, fk=fk)
    assert metrics["dof_rmse_rad"] == pytest.approx(0.05, rel=1e-9)
    assert metrics["root_pos_error_mm"] == pytest.approx(0.0, abs=1e-9)
    assert 1.0 < metrics["pa_mpjpe_mm"] <= metrics["mpjpe_global_mm"]
    assert metrics["mpjpe_local_mm"] == pytest.approx(metrics["mpjpe_global_mm"], rel=1e-9)  # same root pose


def test_dof_rmse_matches_joints_by_name(ref: Motion, fk: ForwardKinematics) -> None:
    order = np.random.default_rng(0).permutation(ref.num_dof)
    shuffled = _with(ref, dof=ref.dof[:, order], joint_names=[ref.joint_names[i] for i in order])
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in motion_metrics(shuffled, ref, fk=fk).values())


def test_scaled_skeleton_is_invisible_to_pa_mpjpe(ref: Motion, fk: ForwardKinematics, tmp_path: Path) -> None:
    root = ET.parse(default_mjcf_path()).getroot()
    for body in root.iter("body"):
        body.set("pos", " ".join(str(1.3 * float(v)) for v in body.get("pos", "0 0 0").split()))
    scaled_xml = tmp_path / "g1_scaled.xml"
    ET.ElementTree(root).write(scaled_xml)
    scaled = ForwardKinematics(scaled_xml).body_positions(ref)
    normal = fk.body_positions(ref)
    metrics = body_metrics(scaled, normal, ref.root_pos, ref.root_pos, ref.root_quat, ref.root_quat)
    assert metrics["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["mpjpe_local_mm"] > 50.0


def test_single_frame_bump_gives_known_accel_error(ref: Motion, fk: ForwardKinematics) -> None:
    pos = fk.body_positions(ref)
    bumped = pos.copy()
    bumped[50] += np.array([0.0, 0.003, 0.004])  # 5 mm at one frame -> second differences 5, 10, 5 mm
    metrics = body_metrics(bumped, pos, ref.root_pos, ref.root_pos, ref.root_quat, ref.root_quat)
    assert metrics["accel_error_mm"] == pytest.approx(20.0 / (ref.num_frames - 2), rel=1e-9)
    assert metrics["mpjpe_global_mm"] == pytest.approx(5.0 / ref.num_frames, rel=1e-9)


def test_mismatched_inputs_fail_clearly(ref: Motion, fk: ForwardKinematics) -> None:
    with pytest.raises(ValueError, match="180 frames.*equal-length"):
        motion_metrics(ref.slice(0, 100, name="short"), ref, fk=fk)
    with pytest.raises(ValueError, match="fps"):
        motion_metrics(
            Motion("pred", 30.0, ref.root_pos, ref.root_quat, ref.dof, ref.joint_names), ref, fk=fk
        )
    renamed = list(ref.joint_names)
    renamed[0] = "left_hip_pitch"
    with pytest.raises(ValueError, match="left_hip_pitch"):
        motion_metrics(_with(ref, joint_names=renamed), ref, fk=fk)
    pos = fk.body_positions(ref)
    with pytest.raises(ValueError, match="ref_root_quat"):
        body_metrics(pos, pos, ref.root_pos, ref.root_pos, ref.root_quat, ref.root_quat[:-1])
