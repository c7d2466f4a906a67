"""The deployment example: 500 Hz PD commands from an export into the MuJoCo G1, holds on missed tokens.

Runs on a tiny tokenizer trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _tiny_tokenizer import train_tiny_tokenizer

from motion_vqvae.envs.standin import MujocoRobot, ScheduledFeed, clip_tokens
from sim2real import JointMap, TokenDecoder
from sim2real.deploy import ControlLoop, manifest_gains
from sim2real.robot import load_robot
from sim2real.watchdog import WatchdogConfig

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


# The watchdog, in the MuJoCo loop: every fault ends the run with a report, never a traceback.


def _loop_and_robot(export_dir: Path, **robot_kwargs) -> tuple[TokenDecoder, MujocoRobot, list]:
    decoder = TokenDecoder(export_dir)
    robot = MujocoRobot(JointMap.from_dict(decoder.manifest["joint_map"]), **robot_kwargs)
    return decoder, robot, clip_tokens(decoder, SAMPLE)


def _assert_braked_to_rest(log, decoder: TokenDecoder) -> None:
    """Commands within the velocity limit all along, and the last ones standing still (the held target)."""
    velocity = np.abs(np.diff(log.commanded, axis=0)) * 500.0
    assert np.all(velocity <= decoder.limits.velocity * (1 + 1e-6) + 1e-6)
    np.testing.assert_array_equal(log.commanded[-1], log.commanded[-2])


@pytest.mark.parametrize("bad", [999, (3, 4), float("nan")], ids=["out_of_range", "two_streams", "nan"])
def test_a_bad_token_mid_motion_holds_brakes_and_reports(export_dir: Path, bad) -> None:
    decoder, robot, tokens = _loop_and_robot(export_dir)
    feed = ScheduledFeed([*tokens[:6], bad, *tokens[6:]])
    log = ControlLoop(decoder, robot, 500.0).run(feed, seconds=2.0)
    assert log.stop_reason == "bad_token" and not log.damping
    assert [t.kind for t in log.trips] == ["bad_token"] and repr(bad) in log.trips[0].detail
    assert log.held[:6] == [False] * 6 and all(log.held[6:])  # no token played after the bad one
    assert log.trips[0].time == pytest.approx(0.8)  # the 7th token's frames are due from frame 24 on
    assert len(log.time) < 1000  # ended early, once at rest
    _assert_braked_to_rest(log, decoder)
    assert log.time[-1] - log.trips[0].time < 0.5
    assert "stopped: bad_token" in log.report()


def test_a_failing_feed_holds_and_brakes(export_dir: Path) -> None:
    decoder, robot, tokens = _loop_and_robot(export_dir)
    feed = ScheduledFeed(tokens)

    class FailingFeed:
        def poll(self):
            if feed._slot == 5:
                raise ConnectionResetError("policy process died")
            return feed.poll()

    log = ControlLoop(decoder, robot, 500.0).run(FailingFeed(), seconds=2.0)
    assert log.stop_reason == "feed_error" and "policy process died" in log.trips[0].detail
    assert not log.damping and len(log.time) < 1000
    _assert_braked_to_rest(log, decoder)


def test_stop_brakes_to_rest_and_ends_cleanly(export_dir: Path) -> None:
    decoder, robot, tokens = _loop_and_robot(export_dir)
    feed = ScheduledFeed(tokens)
    loop = ControlLoop(decoder, robot, 500.0)

    class StoppingFeed:
        def poll(self):
            token = feed.poll()
            if feed._slot == 5:
                loop.stop()
            return token

    log = loop.run(StoppingFeed(), seconds=2.0)
    assert log.stop_reason == "stop" and not log.damping and len(log.time) < 1000
    _assert_braked_to_rest(log, decoder)
    assert np.all(robot.env.kp > 0)  # the held target stays under the PD gains


def test_a_fall_trips_the_tracking_error_and_damps(export_dir: Path) -> None:
    decoder, robot, tokens = _loop_and_robot(export_dir, gantry=0.0)  # off the gantry: it falls
    log = ControlLoop(decoder, robot, 500.0).run(ScheduledFeed(tokens), seconds=3.0)
    assert log.stop_reason == "tracking_error" and log.damping, log.report()
    assert 0.5 < log.trips[0].time < 2.0 and len(log.time) < 1500
    np.testing.assert_array_equal(robot.env.kp, 0.0)  # Unitree's damping mode: kp = 0, kd > 0
    assert np.all(robot.env.kd > 0)


def test_a_blocked_joint_trips_the_tracking_error(export_dir: Path) -> None:
    decoder, robot, tokens = _loop_and_robot(export_dir)
    body = robot.env.body
    sim = body.joint_names.index("left_knee_joint")
    stuck = float(body.data.qpos[body.dof_qpos[sim]]) + 0.6  # jammed away from where it is commanded
    step = robot.env.step

    def blocked_step(target):
        result = step(target)
        body.data.qpos[body.dof_qpos[sim]], body.data.qvel[body.dof_qvel[sim]] = stuck, 0.0
        return result

    robot.env.step = blocked_step
    log = ControlLoop(decoder, robot, 500.0).run(ScheduledFeed(tokens), seconds=2.0)
    assert log.stop_reason == "tracking_error" and log.damping
    assert "rad from its command (limit 0.4) for 25 ticks" in log.trips[0].detail
    assert 25 <= log.trips[0].tick < 100  # tracking_ticks in a row after the jam, well before the end
    knee = decoder.real_joint_names.index("left_knee_joint")
    np.testing.assert_array_equal(log.measured[1:, knee], stuck)


class _FaultyRobot(MujocoRobot):
    """The MuJoCo G1 whose read() goes wrong from tick ``after`` on: ``frozen`` (the bus repeats the last
    sample), ``stamp`` (a timestamp that stops advancing), ``nan`` or ``slow`` (a read that overruns)."""

    def __init__(self, joint_map: JointMap, fault: str, after: int) -> None:
        super().__init__(joint_map)
        self.fault, self.after, self.reads, self.last = fault, after, 0, None

    def read(self):
        self.reads += 1
        q, dq = super().read()
        late = self.reads > self.after
        if self.fault == "frozen":
            self.last = self.last if late and self.last is not None else (q, dq)
            return self.last
        if self.fault == "stamp":
            return q, dq, min(self.reads, self.after) * 0.002
        if self.fault == "nan" and late:
            q = q.copy()
            q[2] = np.nan
        if self.fault == "slow" and late:
            time.sleep(0.003)
        if self.fault == "kick" and late:  # a joint whipped round: 3x its velocity limit
            dq = dq.copy()
            dq[5] = 3.0 * self.velocity_limit[5]
        return q, dq

    def send(self, q_target, kp, kd) -> None:
        if self.fault == "send" and self.reads > self.after:
            raise ConnectionError("bus down")
        super().send(q_target, kp, kd)


@pytest.mark.parametrize(
    ("fault", "reason", "damping"),
    [
        ("frozen", "stale_read", True),
        ("stamp", "stale_read", True),
        ("nan", "bad_read", True),
        ("slow", "overrun", False),
        ("kick", "overspeed", True),
        ("send", "robot_error", False),
    ],
)
def test_bad_reads_and_overruns_end_the_run_with_a_report(
    export_dir: Path, fault: str, reason: str, damping: bool
) -> None:
    decoder = TokenDecoder(export_dir)
    robot = _FaultyRobot(JointMap.from_dict(decoder.manifest["joint_map"]), fault, after=300)
    robot.velocity_limit = decoder.limits.velocity
    log = ControlLoop(decoder, robot, 500.0).run(ScheduledFeed(clip_tokens(decoder, SAMPLE)), seconds=2.0)
    assert log.stop_reason == reason and log.damping == damping, log.report()
    assert 300 <= log.trips[0].tick <= 300 + 12 and len(log.time) < 1000
    if reason == "overrun":
        assert log.max_consecutive_overruns >= 10 and log.overruns >= 10
        _assert_braked_to_rest(log, decoder)
    elif reason == "robot_error":  # the damping command could not be sent either: both are reported
        assert [t.kind for t in log.trips] == ["robot_error", "robot_error"] and "bus down" in log.report()
    else:
        np.testing.assert_array_equal(robot.env.kp, 0.0)


def test_watchdog_settings_are_checked(export_dir: Path) -> None:
    decoder, robot, _ = _loop_and_robot(export_dir)
    with pytest.raises(ValueError, match="WatchdogConfig.max_tracking_error must be a positive"):
        WatchdogConfig(max_tracking_error=float("nan"))
    decoder.manifest["kd"] = [0.0] * len(decoder.real_joint_names)
    with pytest.raises(ValueError, match="damping fallback needs kd > 0"):
        ControlLoop(decoder, robot)
    ControlLoop(decoder, robot, watchdog=WatchdogConfig(damping_kd=2.0))
