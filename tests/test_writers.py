"""Writers: read -> write -> read gives the same clips bit for bit; writes are atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.data import load_motions, resample, sample_motion_path, save_csv, save_npy
from motion_vqvae.data.writers import atomic_write


def _same(a, b) -> None:
    assert a.fps == b.fps and a.joint_names == b.joint_names
    assert np.array_equal(a.root_pos, b.root_pos)
    assert np.array_equal(a.root_quat, b.root_quat)
    assert np.array_equal(a.dof, b.dof)


def test_npy_round_trip_of_seed_layout(tmp_path: Path, seed_layout_npy: Path) -> None:
    motions = load_motions(seed_layout_npy, jump_threshold=None)
    save_npy(motions, tmp_path / "copy.npy")
    back = load_motions(tmp_path / "copy.npy", jump_threshold=None)
    assert len(back) == len(motions) == 51
    for a, b in zip(motions, back, strict=True):
        _same(a, b)
    table = np.load(tmp_path / "copy.npy")
    assert table.shape[1] == 38 and int(table[:, -1].sum()) == 50  # one flagged boundary frame per join
    np.testing.assert_allclose(np.diff(table[:, 0]), 1 / 30, atol=1e-12)


def test_npy_blend_frames_and_kept_transitions(tmp_path: Path) -> None:
    motions = load_motions(sample_motion_path())
    save_npy(motions, tmp_path / "blend.npy", blend_frames=10)
    assert (tmp_path / "blend.npy").read_bytes() == sample_motion_path().read_bytes()
    kept = load_motions(tmp_path / "blend.npy", keep_transitions=True)
    assert [m.num_frames for m in kept] == [250, 220, 280, 190, 150]
    with pytest.raises(ValueError, match="blend_frames"):
        save_npy(motions, tmp_path / "x.npy", blend_frames=0)


def test_npy_refuses_mixed_fps(tmp_path: Path) -> None:
    motions = load_motions(sample_motion_path())
    with pytest.raises(ValueError, match=r"mixed\.npy.*resample"):
        save_npy([motions[0], resample(motions[1], 60)], tmp_path / "mixed.npy")
    assert not (tmp_path / "mixed.npy").exists()


@pytest.mark.parametrize("order", ["xyzw", "wxyz"])
def test_csv_round_trip(tmp_path: Path, g1_moves_dir: Path, order: str) -> None:
    motion = load_motions(g1_moves_dir / "B_HandsUp.csv", jump_threshold=None)[0]
    save_csv(motion, tmp_path / "hands.csv", quat_order=order)
    back = load_motions(tmp_path / "hands.csv", fps=60, quat_order=order, jump_threshold=None)[0]
    _same(motion, back)
    assert back.name == "hands"


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")

    def explode(handle) -> None:
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]
