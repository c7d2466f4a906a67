"""evaluate.py's feasibility block (issue 21); every dataset read at its own fps, whatever the checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.data import load_motions, sample_motion_path, save_csv
from motion_vqvae.physics import PHYSICS_METRICS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

import evaluate  # noqa: E402
from _tiny_tokenizer import train_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint_60(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tokenizer trained on the sample read as 60 fps: its config records a source fps of 60."""
    return train_tiny_tokenizer(
        tmp_path_factory.mktemp("physics") / "run", str(sample_motion_path()), 4, fps=60.0
    )


def _evaluate(checkpoint: Path, motion: Path, out: Path, *extra: str) -> dict:
    args = ["--checkpoint", str(checkpoint), "--motion_file", str(motion), "--out", str(out), *extra]
    assert evaluate.main(["--split", "all", *args]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_metrics_json_has_the_physics_block_unless_turned_off(checkpoint_60: Path, tmp_path: Path, capsys):
    metrics = _evaluate(checkpoint_60, sample_motion_path(), tmp_path / "on")
    physics = metrics["physics"]
    assert set(physics) == {"reconstruction", "reference"}
    for group in physics.values():
        assert set(group) == set(PHYSICS_METRICS)
        assert 0.0 <= group["airborne_share"] <= 1.0 and group["joint_range_violation"] >= 0.0
    assert physics["reference"]["joint_range_violation"] == 0.0
    rows = metrics["physics_per_clip"]
    assert [r["name"] for r in rows] == [r["name"] for r in metrics["per_clip"]]
    skate = [r["reconstruction"]["skate_mm"] for r in rows]
    assert physics["reconstruction"]["skate_mm"] == pytest.approx(np.nanmean(skate))
    assert (tmp_path / "on" / "physics.png").stat().st_size > 10_000
    printed = json.loads(capsys.readouterr().out)
    assert "physics" in printed and "physics_per_clip" not in printed
    off = _evaluate(checkpoint_60, sample_motion_path(), tmp_path / "off", "--no-physics")
    assert "physics" not in off and not (tmp_path / "off" / "physics.png").exists()


def _frame_counts(metrics: dict) -> dict[str, int]:
    return {c["name"]: c["num_frames"] for c in metrics["per_clip"]}


def test_pkl_clips_are_read_at_their_fps_key(checkpoint_60: Path, asap_dir: Path, tmp_path: Path) -> None:
    """An ASAP PKL says fps 30; the checkpoint's 60 (a source rate) must not halve it."""
    source = sorted(asap_dir.glob("*.pkl"))[0]
    clips = load_motions(source)
    assert {c.fps for c in clips} == {30.0}
    metrics = _evaluate(checkpoint_60, source, tmp_path / "pkl", "--no-physics")
    assert _frame_counts(metrics) == {c.name: c.num_frames for c in clips}


def test_csv_without_meta_is_read_at_the_fps_flag(checkpoint_60: Path, tmp_path: Path) -> None:
    """A 30 Hz clip declared 15 fps is resampled to the tokenizer's 30: the flag rules."""
    clip = load_motions(sample_motion_path())[0]
    folder = tmp_path / "csv"
    save_csv(clip, folder / "clip.csv", quat_order="xyzw")
    at_15 = _evaluate(
        checkpoint_60, folder, tmp_path / "e15", "--fps", "15", "--quat-order", "xyzw", "--no-physics"
    )
    assert _frame_counts(at_15) == {"clip": 2 * clip.num_frames - 1}


def test_kimodo_is_read_at_30_fps_from_its_meta_json(checkpoint_60: Path, kimodo_dir: Path, tmp_path: Path):
    assert json.loads((kimodo_dir / "meta.json").read_text())["fps"] == 30
    metrics = _evaluate(checkpoint_60, kimodo_dir, tmp_path / "kimodo")
    assert _frame_counts(metrics) == {c.name: c.num_frames for c in load_motions(kimodo_dir)}
    assert metrics["physics"]["reference"]["penetration_mm"] > 2.0  # kimodo's feet sink into the floor


def test_tokenizers_benchmark_rows_carry_physics_and_cross_dataset_lines(
    checkpoint_60: Path, kimodo_dir: Path
) -> None:
    """The benchmark's scoring path on a tiny model: levels and a cross-dataset row with physics, the
    reference codecs alike, and the README table showing ``reconstruction (reference)`` cells."""
    from benchmarks.rate_distortion import PHYSICS_COLUMNS, cross_dataset, markdown_table, score_levels
    from benchmarks.reference_codecs import reference_rows
    from motion_vqvae.agent import MVQVAEAgent

    agent = MVQVAEAgent.from_checkpoint(checkpoint_60, device="cpu")
    clips = [agent.prepare(m) for m in load_motions(sample_motion_path())[:2]]
    levels = score_levels(agent, clips, [1], agent.mjcf)
    assert set(levels["1"]["physics"]) == {"reconstruction", "reference"}
    cross = cross_dataset(agent, {"kimodo": str(kimodo_dir)})
    assert cross["kimodo"]["source_fps"] == [30.0] and cross["kimodo"]["clips"] == 5
    assert cross["kimodo"]["physics"]["reference"]["penetration_mm"] > 2.0
    refs = reference_rows(agent.layout, clips, clips[:1], frames=4, fps=30.0, mjcf=agent.mjcf)
    assert all(set(r["physics"]["reconstruction"]) == set(PHYSICS_METRICS) for r in refs.values())
    row = {
        "kind": "neural",
        "token_spec": {"kind": "vq"},
        **levels["1"],
        "levels": levels,
        "cross_dataset": cross,
    }
    table = markdown_table({"rows": {"vq": row, **refs}})
    line = next(li for li in table.splitlines() if "scored on kimodo" in li)
    skate = cross["kimodo"]["physics"]
    assert f"{skate['reconstruction']['skate_mm']:.1f} ({skate['reference']['skate_mm']:.1f})" in line
    assert all(f"{header}, recon (data)" in table for _, header, _ in PHYSICS_COLUMNS)
    assert table.count("scored on") == 1
    for line in table.splitlines()[2:]:  # every row, neural and reference, has its physics cells
        assert all("(" in cell for cell in line.split("|")[7 : 7 + len(PHYSICS_COLUMNS)]), line
