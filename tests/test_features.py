"""Features on the real clips: exact inverse, heading invariance, layout (de)serialization, normalization."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest

from motion_vqvae.data.motion import Motion
from motion_vqvae.features import DEFAULT_STD_FLOOR, FeatureLayout
from motion_vqvae.normalization import Normalizer
from motion_vqvae.rotations import quat_conjugate, quat_from_yaw, quat_mul, quat_rotate


def _read_g1_moves(folder: Path) -> list[Motion]:
    names = json.loads((folder / "meta.json").read_text())["dof_names"]
    motions = []
    for path in sorted(folder.glob("*.csv")):
        data = np.loadtxt(path, delimiter=",")
        motions.append(Motion(path.stem, 60.0, data[:, :3], data[:, 3:7], data[:, 7:], names).canonical())
    return motions


@pytest.fixture(scope="module")
def g1_moves(g1_moves_dir: Path) -> list[Motion]:
    motions = _read_g1_moves(g1_moves_dir)
    assert len(motions) == 51
    return motions


@pytest.fixture(scope="module")
def asap_features(asap_dir: Path) -> list[np.ndarray]:
    """Features of every asap_g1_23dof clip (test-only joblib read of a trusted fixture)."""
    layout = FeatureLayout(23)
    feats = []
    for path in sorted(asap_dir.glob("*.pkl")):
        for name, clip in joblib.load(path).items():
            motion = Motion(
                name, clip["fps"], clip["root_trans_offset"], clip["root_rot"], clip["dof"]
            ).canonical()
            feats.append(layout.from_motion(motion))
    return feats


def _rotation_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    d = quat_mul(quat_conjugate(q1), q2)
    return 2.0 * np.arctan2(np.linalg.norm(d[:, :3], axis=1), np.abs(d[:, 3]))


@pytest.mark.parametrize("prefer_expmap", [True, False])
def test_round_trip_on_every_g1_moves_clip(g1_moves: list[Motion], prefer_expmap: bool):
    layout = FeatureLayout.for_motion(g1_moves[0], prefer_expmap)
    for motion in g1_moves:
        feats = layout.from_motion(motion)
        assert feats.shape == (motion.num_frames, layout.dim) and feats.dtype == np.float64
        pos, yaw = layout.start_pose(motion)
        back = layout.to_motion(feats, fps=motion.fps, start_pos=pos, start_yaw=yaw, name=motion.name)
        assert back.joint_names == motion.joint_names and back.fps == motion.fps
        np.testing.assert_allclose(back.dof, motion.dof, atol=1e-5, err_msg=motion.name)
        drift = np.linalg.norm(back.root_pos - motion.root_pos, axis=1).max()
        assert drift < 1e-3, f"{motion.name}: root drift {drift} m"
        angle = _rotation_angle(motion.root_quat, back.root_quat).max()
        assert angle < 1e-6, f"{motion.name}: root rotation error {angle} rad"
        assert np.all(np.sum(back.root_quat[1:] * back.root_quat[:-1], axis=1) >= 0)


def test_float32_network_output_still_decodes(g1_moves: list[Motion]):
    motion = g1_moves[3]
    layout = FeatureLayout.for_motion(motion)
    pos, yaw = layout.start_pose(motion)
    back = layout.to_motion(
        layout.from_motion(motion).astype(np.float32), fps=60.0, start_pos=pos, start_yaw=yaw
    )
    assert back.root_pos.dtype == np.float64
    # float32 rounding of the velocities, integrated over the whole clip, stays far below a millimetre.
    assert np.linalg.norm(back.root_pos - motion.root_pos, axis=1).max() < 1e-4


@pytest.mark.parametrize("prefer_expmap", [True, False])
@pytest.mark.parametrize("angle", [0.7, -2.5, np.pi - 1e-3])
def test_features_ignore_world_heading_and_ground_position(
    g1_moves: list[Motion], prefer_expmap: bool, angle: float
):
    layout = FeatureLayout(29, prefer_expmap)
    turn = quat_from_yaw(np.array(angle))
    shift = np.array([3.0, -1.5, 0.0])
    for motion in g1_moves[::10]:
        moved = Motion(
            motion.name,
            motion.fps,
            quat_rotate(turn, motion.root_pos) + shift,
            quat_mul(np.broadcast_to(turn, motion.root_quat.shape), motion.root_quat),
            motion.dof,
            motion.joint_names,
        )
        np.testing.assert_allclose(layout.from_motion(moved), layout.from_motion(motion), atol=1e-9)
        pos, yaw = layout.start_pose(moved)
        back = layout.to_motion(layout.from_motion(motion), fps=motion.fps, start_pos=pos, start_yaw=yaw)
        assert np.linalg.norm(back.root_pos - moved.root_pos, axis=1).max() < 1e-3


def test_spinning_in_place_unwraps_the_heading():
    """Several full turns: the wrapped yaw difference gives a constant rate and the inverse unwraps it."""
    t = np.arange(300)
    yaw = 0.2 * t  # rad per frame, 9.5 turns
    motion = Motion(
        "spin",
        30.0,
        np.c_[np.cos(yaw), np.sin(yaw), np.full(300, 0.8)],
        quat_from_yaw(yaw),
        np.zeros((300, 2)),
    )
    layout = FeatureLayout(2)
    feats = layout.from_motion(motion)
    np.testing.assert_allclose(feats[:, layout.slices["yaw_rate"]], 0.2 * 30.0, atol=1e-9)
    np.testing.assert_allclose(feats[:, layout.slices["root_tilt"]], 0.0, atol=1e-12)
    back = layout.to_motion(feats, fps=30.0, start_pos=motion.root_pos[0], start_yaw=0.0)
    np.testing.assert_allclose(back.root_pos, motion.root_pos, atol=1e-9)
    assert _rotation_angle(back.root_quat, motion.root_quat).max() < 1e-9


def test_slices_cover_every_column_once():
    for prefer_expmap, tilt in ((True, 3), (False, 6)):
        layout = FeatureLayout(23, prefer_expmap)
        assert layout.dim == 1 + tilt + 3 + 1 + 2 * 23
        covered = np.concatenate([np.arange(layout.dim)[s] for s in layout.slices.values()])
        np.testing.assert_array_equal(covered, np.arange(layout.dim))


def test_bad_input_is_refused_with_the_clip_name(g1_moves: list[Motion]):
    motion = g1_moves[0]
    with pytest.raises(ValueError, match=f"{motion.name}.*29 dof.*expects 23"):
        FeatureLayout(23).from_motion(motion)
    with pytest.raises(ValueError, match="joint order"):
        FeatureLayout(29, joint_names=list(reversed(motion.joint_names))).from_motion(motion)
    with pytest.raises(ValueError, match="at least 2"):
        FeatureLayout(29).from_motion(motion.slice(0, 1, name="single"))
    with pytest.raises(ValueError, match=r"\(T>0, 66\)"):
        FeatureLayout(29).to_motion(np.zeros((5, 65)), fps=30.0, start_pos=np.zeros(3), start_yaw=0.0)
    with pytest.raises(ValueError, match="num_dof"):
        FeatureLayout(0)
    with pytest.raises(TypeError, match="prefer_expmap"):
        FeatureLayout(29, prefer_expmap="yes")  # type: ignore[arg-type]


def test_normalizer_floors_constant_ankle_roll_and_inverts(asap_features: list[np.ndarray]):
    layout = FeatureLayout(23)
    norm = layout.fit_normalizer(asap_features)
    allf = np.concatenate(asap_features)
    raw_std = allf.std(axis=0)
    dof = np.arange(layout.dim)[layout.slices["dof_pos"]]
    ankle_roll = dof[[5, 11]]  # constant in asap_g1_23dof
    assert np.all(raw_std[ankle_roll] < 1e-6)
    np.testing.assert_array_equal(norm.std[ankle_roll], DEFAULT_STD_FLOOR["dof_pos"])
    moving = raw_std > layout.default_std_floor()
    np.testing.assert_allclose(norm.std[moving], raw_std[moving], rtol=1e-10)
    np.testing.assert_allclose(norm.mean, allf.mean(axis=0), atol=1e-12)
    z = layout.normalize(allf)
    assert np.all(np.isfinite(z)) and np.abs(z[:, ankle_roll]).max() < 1e-3
    np.testing.assert_allclose(layout.denormalize(z), allf, rtol=0, atol=1e-12)


def test_normalizer_refuses_bad_input():
    with pytest.raises(ValueError, match="no feature arrays"):
        Normalizer.fit([])
    with pytest.raises(ValueError, match="array 1 has shape"):
        Normalizer.fit([np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.fit([np.full((4, 3), np.nan)])
    with pytest.raises(ValueError, match="std_floor must be positive"):
        Normalizer.fit([np.zeros((4, 3))], std_floor=0.0)
    with pytest.raises(ValueError, match="expected 3 feature columns"):
        Normalizer.fit([np.zeros((4, 3))]).normalize(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="fit_normalizer"):
        FeatureLayout(3).normalize(np.zeros((2, 3 * 2 + 8)))
    with pytest.raises(ValueError, match="array 0 has shape .*66 columns"):
        FeatureLayout(29).fit_normalizer([np.zeros((4, 10))], std_floor=1.0)


def test_layout_dict_is_plain_json_and_torch_safe(tmp_path: Path):
    torch = pytest.importorskip("torch")
    layout = FeatureLayout(23, prefer_expmap=False, joint_names=[f"j{i}" for i in range(23)])
    layout.fit_normalizer([np.random.default_rng(0).normal(size=(50, layout.dim))])
    data = json.loads(json.dumps(layout.to_dict()))
    assert data["slices"]["dof_pos"] == [11, 34] and data["dim"] == 57
    again = FeatureLayout.from_dict(data)
    assert again.to_dict() == layout.to_dict()
    np.testing.assert_array_equal(again.normalizer.std, layout.normalizer.std)
    torch.save({"features": layout.to_dict()}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["features"]
    assert FeatureLayout.from_dict(loaded).to_dict() == layout.to_dict()


def test_layout_from_dict_refuses_unknown_or_inconsistent_keys():
    data = FeatureLayout(29).to_dict()
    with pytest.raises(KeyError, match="unknown keys \\['nb_code'\\]"):
        FeatureLayout.from_dict({**data, "nb_code": 512})
    with pytest.raises(ValueError, match="disagree"):
        FeatureLayout.from_dict({**data, "slices": {**data["slices"], "dof_pos": [0, 29]}})
    with pytest.raises(KeyError, match="num_dof"):
        FeatureLayout.from_dict({"prefer_expmap": True})
    with pytest.raises(KeyError, match="mean"):
        FeatureLayout.from_dict({**data, "normalizer": {"std": [1.0]}})
