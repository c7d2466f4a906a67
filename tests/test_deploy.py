"""The deployment example: 500 Hz PD commands from an export into the MuJoCo G1, holds on missed tokens.

Runs on a tiny tokenizer trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from _tiny_tokenizer import train_tiny_tokenizer

from motion_vqvae.envs.standin import MujocoRobot, ScheduledFeed, clip_tokens
from sim2real import JointMap, TokenDecoder
from sim2real.deploy import ControlLoop, manifest_gains
from sim2real.robot import load_robot

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import deploy_example  # noqa: E402
import export_onnx  # noqa: E402

SAMPLE = REPO / "motion_vqvae" / "assets" / "sample_motion.npy"
needs_hold = pytest.mark.skipif(
    not hasattr(TokenDecoder, "hold"),
    reason="needs TokenDecoder.hold() from the robot runtime (branch runtime)",
)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    checkpoint = train_tiny_tokenizer(tmp_path_factory.mktemp("tok"), str(SAMPLE))
    out = tmp_path_factory.mktemp("exports") / "tiny"
    assert export_onnx.main(["--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    return out


def test_manifest_carries_the_robot_yaml_gains(export_dir: Path) -> None:
    decoder = TokenDecoder(export_dir)
    kp, kd = manifest_gains(decoder)
    yaml_kp, yaml_kd = load_robot("g1_29dof").real_gains(decoder.real_joint_names)
    np.testing.assert_array_equal(kp, yaml_kp)
    np.testing.assert_array_equal(kd, yaml_kd)
    assert kp[decoder.real_joint_names.index("left_knee_joint")] == 150.0


def test_loop_tracks_the_targets_and_holds_on_missed_tokens(export_dir: Path) -> None:
    decoder = TokenDecoder(export_dir)
    robot = MujocoRobot(JointMap.from_dict(decoder.manifest["joint_map"]))
    q0, _ = robot.read()
    tokens = clip_tokens(decoder, SAMPLE)
    assert len(tokens) > 20 and all(0 <= t < 32 for t in tokens)
    log = ControlLoop(decoder, robot, 500.0).run(ScheduledFeed(tokens, late_every=4), seconds=2.0)
    assert log.commanded.shape == log.measured.shape == (1000, 29)
    np.testing.assert_allclose(log.commanded[0], q0)  # the first command is where the robot stands
    assert log.held == [slot % 4 == 3 for slot in range(len(log.held))] and sum(log.held) >= 3
    velocity = np.abs(np.diff(log.commanded, axis=0)) * 500.0  # interpolation keeps the filter's limits
    assert np.all(velocity <= decoder.limits.velocity * (1 + 1e-6) + 1e-6)
    error = log.measured[50:] - log.commanded[50:]
    assert np.sqrt(np.mean(error**2)) < 0.1  # PD with the G1 gains follows the commands on the gantry


def test_example_script_writes_plot_and_summary(export_dir: Path, tmp_path: Path) -> None:
    args = ["--export", str(export_dir), "--out", str(tmp_path), "--seconds", "1.2", "--late-every", "3"]
    assert deploy_example.main(args) == 0
    summary = json.loads((tmp_path / "deploy_summary.json").read_text())
    assert summary["held_token_slots"] == 3 and summary["tokens"] == 6  # 9 slots in 1.2 s, every 3rd late
    assert summary["commanded_velocity_over_limit"] <= 1.0 + 1e-6
    assert (tmp_path / "deploy_tracking.png").stat().st_size > 20_000


def test_an_export_without_gains_is_refused(export_dir: Path, tmp_path: Path) -> None:
    decoder = TokenDecoder(export_dir)
    del decoder.manifest["kp"]
    with pytest.raises(KeyError, match="no kp/kd; add kp and kd per joint to the robot YAML"):
        manifest_gains(decoder)
