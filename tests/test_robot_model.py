"""The shipped mesh-free G1 model against Unitree's, its physics, and ForwardKinematics on real clips."""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pytest

from motion_vqvae.data.motion import Motion
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.robot_model import default_mjcf_path, hinge_joint_names, load_model
from motion_vqvae.rotations import quat_rotate

CLIPS = ("B_HandsUp.csv", "B_AttackKarate.csv", "B_LongDance.csv")


def read_g1_moves(folder: Path, filename: str, stride: int = 1) -> Motion:
    """A g1_moves CSV read with numpy alone (60 fps; root_pos, root_quat xyzw, dof; names in meta.json)."""
    names = json.loads((folder / "meta.json").read_text())["dof_names"]
    rows = np.loadtxt(folder / filename, delimiter=",")[::stride]
    return Motion(filename, 60.0 / stride, rows[:, :3], rows[:, 3:7], rows[:, 7:], names).canonical()


def test_shipped_model_needs_no_external_file() -> None:
    text = default_mjcf_path().read_text()
    model = mujoco.MjModel.from_xml_string(text)  # no base directory: any file reference would fail
    assert model.nmesh == 0 and "file=" not in text
    geom_types = set(model.geom_type.tolist())
    assert mujoco.mjtGeom.mjGEOM_MESH not in geom_types
    assert {
        mujoco.mjtGeom.mjGEOM_CAPSULE,
        mujoco.mjtGeom.mjGEOM_BOX,
        mujoco.mjtGeom.mjGEOM_PLANE,
    } <= geom_types


def test_structure_matches_unitree(unitree_g1_xml: Path) -> None:
    ours, theirs = load_model(), load_model(unitree_g1_xml)
    assert [ours.body(i).name for i in range(ours.nbody)] == [
        theirs.body(i).name for i in range(theirs.nbody)
    ]
    assert [ours.joint(j).name for j in range(ours.njnt)] == [
        theirs.joint(j).name for j in range(theirs.njnt)
    ]
    assert ours.joint(0).name == "floating_base_joint" and ours.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    for field in (
        "body_parentid",
        "body_pos",
        "body_quat",
        "body_mass",
        "body_inertia",
        "body_ipos",
        "body_iquat",
    ):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field), atol=1e-9, err_msg=field)
    for field in ("jnt_type", "jnt_axis", "jnt_range", "jnt_limited", "jnt_actfrcrange"):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field), atol=1e-9, err_msg=field)
    hinges = hinge_joint_names(ours)
    assert [ours.actuator(a).name for a in range(ours.nu)] == hinges
    joint_of_actuator = ours.actuator_trnid[:, 0]
    np.testing.assert_array_equal(ours.actuator_ctrlrange, ours.jnt_actfrcrange[joint_of_actuator])
    assert ours.actuator_ctrllimited.all()


def test_fk_matches_unitree_on_real_frames(g1_moves_dir: Path, unitree_g1_xml: Path) -> None:
    ours, theirs = ForwardKinematics(), ForwardKinematics(unitree_g1_xml)
    assert ours.body_names == theirs.body_names and len(ours.body_names) == 30
    for clip in CLIPS:
        motion = read_g1_moves(g1_moves_dir, clip, stride=7)
        err = np.linalg.norm(ours.body_positions(motion) - theirs.body_positions(motion), axis=-1)
        assert err.max() < 1e-3, f"{clip}: worst body {ours.body_names[int(np.argmax(err.max(0)))]}"


def test_fk_root_body_follows_root_pose(g1_moves_dir: Path) -> None:
    motion = read_g1_moves(g1_moves_dir, CLIPS[0], stride=10)
    fk = ForwardKinematics()
    pos = fk.body_positions(motion)
    assert pos.shape == (motion.num_frames, fk.num_bodies, 3)
    np.testing.assert_allclose(pos[:, fk.body_index("pelvis")], motion.root_pos, atol=1e-12)
    # Hip pitch sits at a fixed offset from the pelvis, rotated by the root quaternion (xyzw, not wxyz).
    offset = quat_rotate(motion.root_quat, np.array([0.0, 0.064452, -0.1027]))
    np.testing.assert_allclose(
        pos[:, fk.body_index("left_hip_pitch_link")], motion.root_pos + offset, atol=1e-9
    )


def test_fk_missing_model_joints_stay_at_zero(g1_moves_dir: Path) -> None:
    motion = read_g1_moves(g1_moves_dir, CLIPS[1], stride=20)
    fk = ForwardKinematics()
    keep = [i for i, name in enumerate(motion.joint_names) if "wrist" not in name]
    partial = Motion(
        "no_wrists",
        motion.fps,
        motion.root_pos,
        motion.root_quat,
        motion.dof[:, keep],
        [motion.joint_names[i] for i in keep],
    )
    zeroed = motion.dof.copy()
    zeroed[:, [i for i in range(motion.num_dof) if i not in keep]] = 0.0
    full = Motion("zero_wrists", motion.fps, motion.root_pos, motion.root_quat, zeroed, motion.joint_names)
    np.testing.assert_allclose(fk.body_positions(partial), fk.body_positions(full), atol=1e-12)


def test_fk_rejects_unknown_joint_and_bad_path(g1_moves_dir: Path, tmp_path: Path) -> None:
    motion = read_g1_moves(g1_moves_dir, CLIPS[0], stride=50)
    names = list(motion.joint_names)
    names[3] = "left_knee_pitch"
    renamed = Motion("renamed", motion.fps, motion.root_pos, motion.root_quat, motion.dof, names)
    with pytest.raises(ValueError, match="left_knee_pitch"):
        ForwardKinematics().body_positions(renamed)
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        ForwardKinematics(tmp_path / "missing.xml")
    with pytest.raises(KeyError, match="left_toe"):
        ForwardKinematics().body_index("left_toe")


def test_models_are_cached_per_path(unitree_g1_xml: Path) -> None:
    assert load_model() is load_model(str(default_mjcf_path()))
    assert load_model(unitree_g1_xml) is not load_model()


def test_zero_torque_second_on_the_floor_stays_finite() -> None:
    model = load_model()
    data = mujoco.MjData(model)
    data.ctrl[:] = 0.0
    mujoco.mj_forward(model, data)
    left_foot, right_foot = model.geom("left_foot").id, model.geom("right_foot").id
    soles = data.geom_xpos[[left_foot, right_foot], 2] - model.geom_size[[left_foot, right_foot], 2]
    np.testing.assert_allclose(soles, 0.0, atol=2e-3)  # the initial pose stands on the floor
    touched = set()
    for _ in range(round(1.0 / model.opt.timestep)):
        mujoco.mj_step(model, data)
        touched.update(
            {int(data.contact[i].geom1) for i in range(data.ncon)}
            | {int(data.contact[i].geom2) for i in range(data.ncon)}
        )
    assert np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
    assert data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0
    assert {left_foot, right_foot} <= touched
    assert data.qpos[2] > 0.05  # collapsed onto the floor, not through it


def test_generator_output_is_what_ships(unitree_g1_xml: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_g1_model", Path(__file__).resolve().parents[1] / "scripts" / "build_g1_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = ET.tostring(module.build(unitree_g1_xml), encoding="unicode")
    shipped = ET.tostring(ET.parse(default_mjcf_path()).getroot(), encoding="unicode")
    assert built.split() == shipped.split()
