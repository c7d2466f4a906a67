"""Readers on the real data: every shared file loads, with the right clips, rates, names and conventions."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.data import MotionFileError, load_motions, sample_motion_path, save_csv, save_npy
from motion_vqvae.data.joint_names import G1_23DOF_JOINTS, G1_29DOF_JOINTS


def _assert_canonical(motion) -> None:
    np.testing.assert_allclose(np.linalg.norm(motion.root_quat, axis=1), 1.0, atol=1e-12)
    assert np.all(np.sum(motion.root_quat[1:] * motion.root_quat[:-1], axis=1) >= 0)


def test_seed_layout_npy_has_51_clips(seed_layout_npy: Path) -> None:
    motions = load_motions(seed_layout_npy, jump_threshold=None)
    assert len(motions) == 51
    assert [m.name for m in motions[:2]] == ["g1_moves_30fps_seed_layout_0", "g1_moves_30fps_seed_layout_1"]
    assert all(m.fps == 30.0 and m.joint_names == list(G1_29DOF_JOINTS) for m in motions)
    raw = np.load(seed_layout_npy)
    assert sum(m.num_frames for m in motions) == int(np.sum(raw[:, -1] == 0))
    kept = load_motions(seed_layout_npy, keep_transitions=True, jump_threshold=None)
    assert len(kept) == 51 and sum(m.num_frames for m in kept) == len(raw)
    # The file is wxyz: the first clip's first quaternion, reordered, is what we hold.
    np.testing.assert_allclose(motions[0].root_quat[0], raw[0, [5, 6, 7, 4]] / np.linalg.norm(raw[0, 4:8]))
    _assert_canonical(motions[0])


def test_asap_pkl_all_52_load(asap_dir: Path) -> None:
    motions = load_motions(asap_dir, jump_threshold=None)
    assert len(motions) == 52
    assert all(m.fps == 30.0 and m.joint_names == list(G1_23DOF_JOINTS) for m in motions)
    assert all(0.5 < np.median(m.root_pos[:, 2]) < 1.1 for m in motions)


def test_g1_moves_csv_load_with_meta_fps(g1_moves_dir: Path) -> None:
    motions = load_motions(g1_moves_dir, jump_threshold=None)
    assert len(motions) == 51
    assert {m.fps for m in motions} == {60.0}
    assert motions[0].name == "B_AttackKarate" and motions[0].num_frames == 2831
    _assert_canonical(motions[0])


def test_kimodo_order_from_meta_and_wrong_order_says_so(
    kimodo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # kimodo's meta.json states wxyz (in its "layout") and 30 fps: the file's own metadata comes first.
    motions = load_motions(kimodo_dir)
    assert len(motions) == 5 and {m.fps for m in motions} == {30.0}
    with caplog.at_level(logging.WARNING, logger="motion_vqvae.data"):
        kept = load_motions(kimodo_dir / "output_dance.csv", quat_order="xyzw", fps=60)[0]
    assert kept.fps == 30.0 and np.allclose(kept.root_quat, motions[0].root_quat)
    assert "quat_order=wxyz, not the xyzw passed (--quat-order)" in caplog.text
    assert "--target-fps 60" in caplog.text  # a conflicting --fps is named, never silently applied
    # Without a meta.json that states it, the order comes from the command line and a wrong one is refused.
    shutil.copy(kimodo_dir / "output_dance.csv", tmp_path / "dance.csv")
    (tmp_path / "meta.json").write_text('{"fps": 30}')
    with pytest.raises(ValueError, match=r"dance\.csv.*upside down.*--quat-order wxyz.*quat_order='wxyz'"):
        load_motions(tmp_path, quat_order="xyzw")


def test_mixed_folder_glob_and_skipped_files(tmp_path: Path, g1_moves_dir: Path, asap_dir: Path) -> None:
    csv = load_motions(g1_moves_dir / "B_Fence2.csv", jump_threshold=None)[0]
    pkl_src = next(iter(sorted(asap_dir.glob("*.pkl"))))
    (tmp_path / "sub").mkdir()
    save_csv(csv, tmp_path / "a.csv")
    save_npy([csv, csv], tmp_path / "sub" / "b.npy")
    (tmp_path / "c.pkl").write_bytes(pkl_src.read_bytes())
    (tmp_path / "README.md").write_text("not a motion")
    (tmp_path / "LICENSE").write_text("not a motion")
    motions = load_motions(tmp_path, fps=60, jump_threshold=None)
    pkl_name = load_motions(pkl_src, jump_threshold=None)[0].name
    assert sorted(m.name for m in motions) == sorted(["a", "b_0", "b_1", pkl_name])
    assert len(load_motions(str(tmp_path / "**" / "*.npy"), jump_threshold=None)) == 2
    with pytest.raises(FileNotFoundError, match="matches no file"):
        load_motions(str(tmp_path / "*.nothing"))
    with pytest.raises(ValueError, match="unknown motion file type"):
        load_motions(tmp_path / "README.md")


def test_folder_mixing_quaternion_orders_says_so(tmp_path: Path, kimodo_dir: Path) -> None:
    wxyz = load_motions(kimodo_dir / "output_wave.csv")[0]
    (tmp_path / "a").mkdir()
    save_csv(wxyz, tmp_path / "a" / "one.csv", quat_order="xyzw")
    shutil.copy(kimodo_dir / "output_wave.csv", tmp_path / "b.csv")  # wxyz, and no meta.json says so
    with pytest.raises(MotionFileError, match=r"b\.csv.*mixes quaternion orders.*one\.csv as xyzw"):
        load_motions(tmp_path, fps=30, quat_order="xyzw")
    (tmp_path / "b").mkdir()
    shutil.move(tmp_path / "b.csv", tmp_path / "b" / "b.csv")
    (tmp_path / "b" / "meta.json").write_text('{"fps": 30, "quat_order": "wxyz"}')
    assert len(load_motions(tmp_path, fps=30, quat_order="xyzw")) == 2  # each folder's meta.json decides


def test_csv_fps_and_joint_names_fallbacks(tmp_path: Path, kimodo_dir: Path) -> None:
    motion = load_motions(kimodo_dir / "output_wave.csv", quat_order="wxyz")[0]
    save_csv(motion, tmp_path / "wave.csv")
    with pytest.raises(ValueError, match=r"wave\.csv.*pass --fps 30 \(from Python: fps=30\)"):
        load_motions(tmp_path / "wave.csv")
    assert load_motions(tmp_path / "wave.csv", fps=30)[0].joint_names == list(G1_29DOF_JOINTS)
    (tmp_path / "meta.json").write_text('{"fps": 25, "dof_names": ["j0"]}')
    with pytest.raises(MotionFileError, match=r"wave\.csv: 29 joint columns, but .*meta\.json lists 1"):
        load_motions(tmp_path / "wave.csv")  # names and columns disagree: refused, not guessed
    (tmp_path / "meta.json").write_text('{"fps": 25}')
    assert load_motions(tmp_path / "wave.csv")[0].fps == 25.0
    odd = np.concatenate([np.tile([0, 0, 0.8, 0, 0, 0, 1.0], (5, 1)), np.zeros((5, 4))], axis=1)
    np.savetxt(tmp_path / "odd.csv", odd, delimiter=",")
    with pytest.raises(ValueError, match=r"odd\.csv: 4 joint columns"):
        load_motions(tmp_path / "odd.csv")


def test_pkl_single_dict_and_fps_key(tmp_path: Path) -> None:
    clip = {
        "root_pos": np.tile([0, 0, 0.8], (4, 1)),
        "root_rot": np.tile([0, 0, 0, 1.0], (4, 1)),
        "dof": np.zeros((4, 23)),
        "fps": 50,
    }
    (tmp_path / "one.pkl").write_bytes(pickle.dumps(clip))
    motion = load_motions(tmp_path / "one.pkl")[0]
    assert motion.name == "one" and motion.fps == 50.0 and motion.num_dof == 23
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"x": {"dof": np.zeros((4, 23))}}))
    with pytest.raises(ValueError, match=r"bad\.pkl.*root_rot"):
        load_motions(tmp_path / "bad.pkl")


def test_robot_mapping(asap_dir: Path, g1_moves_dir: Path) -> None:
    pytest.importorskip("sim2real.joint_map")
    asap = load_motions(sorted(asap_dir.glob("*.pkl"))[0], robot="g1_29dof")[0]
    assert asap.joint_names == list(G1_29DOF_JOINTS)
    wrists = [i for i, n in enumerate(G1_29DOF_JOINTS) if "wrist" in n]
    assert np.all(asap.dof[:, wrists] == 0.0)
    moves = load_motions(g1_moves_dir / "B_Fence2.csv", robot="g1_23dof", jump_threshold=None)[0]
    full = load_motions(g1_moves_dir / "B_Fence2.csv", jump_threshold=None)[0]
    keep = [G1_29DOF_JOINTS.index(n) for n in G1_23DOF_JOINTS]
    np.testing.assert_array_equal(moves.dof, full.dof[:, keep])


def test_min_frames_skips_with_one_warning(asap_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="motion_vqvae.data"):
        motions = load_motions(asap_dir, min_frames=120, jump_threshold=None)
    warnings = [r.getMessage() for r in caplog.records if "min_frames" in r.getMessage()]
    assert len(warnings) == 1
    skipped = 52 - len(motions)
    assert skipped > 0 and f"skipped {skipped} clip(s)" in warnings[0] and "frames)" in warnings[0]
    assert all(m.num_frames >= 120 for m in motions)


def test_target_fps_resamples(g1_moves_dir: Path) -> None:
    motion = load_motions(g1_moves_dir / "B_HandsUp.csv", target_fps=30)[0]
    assert motion.fps == 30.0 and motion.num_frames == (442 + 1) // 2


def test_sample_motion_loads_into_five_clips() -> None:
    motions = load_motions(sample_motion_path())
    assert [m.num_frames for m in motions] == [240, 210, 270, 180, 150]
    assert all(m.fps == 30.0 and m.joint_names == list(G1_29DOF_JOINTS) for m in motions)
    assert sample_motion_path().stat().st_size < 1_000_000
    raw = np.load(sample_motion_path())
    assert int(raw[:, -1].sum()) == 4 * 10  # four 10-frame blends flagged as transitions


def test_sample_motion_is_reproducible_and_within_limits(tmp_path: Path, unitree_g1_xml: Path) -> None:
    import mujoco

    from motion_vqvae.data.sample_motion import write_sample_motion

    write_sample_motion(tmp_path / "again.npy")
    assert (tmp_path / "again.npy").read_bytes() == sample_motion_path().read_bytes()
    model = mujoco.MjModel.from_xml_path(str(unitree_g1_xml))
    low, high = model.jnt_range[1:].T
    for motion in load_motions(sample_motion_path()):
        assert np.all((motion.dof >= low) & (motion.dof <= high)), motion.name
        assert 0.55 < motion.root_pos[:, 2].min() and motion.root_pos[:, 2].max() < 0.8
