"""G1Track-v0 and its parts: gains, servo stability, reference, rewards, terminations, observation."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import motion_vqvae.envs  # noqa: F401  (registers the environments)
from motion_vqvae.data import load_motions, sample_motion_path
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.rotations import quat_from_yaw, quat_mul
from motion_vqvae.tracking import rewards
from motion_vqvae.tracking.batch import TrackingBatch
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.gains import (
    NATURAL_FREQUENCY,
    armature_gains,
    joint_armature,
    make_position_servos,
)
from motion_vqvae.tracking.reference import TRACKED_BODIES, ReferenceMotion
from sim2real.tracker_obs import anchor_orientation_error, tracker_observation_size


@pytest.fixture(scope="module")
def reference() -> ReferenceMotion:
    first = load_motions(sample_motion_path())[0]  # 8 s at 30 fps
    return ReferenceMotion.from_motions([first], G1Body(), 50.0)


def test_armature_gains_follow_beyondmimic() -> None:
    body = G1Body()
    armature = joint_armature(body.joint_names)
    kp, kd = armature_gains(armature)
    knee = body.joint_names.index("left_knee_joint")
    assert kp[knee] == pytest.approx(0.025101925 * NATURAL_FREQUENCY**2)  # 7520-22 motor: ~99 N m/rad
    assert kd[knee] == pytest.approx(2 * 2.0 * 0.025101925 * NATURAL_FREQUENCY)
    ankle = body.joint_names.index("left_ankle_roll_joint")
    assert armature[ankle] == pytest.approx(2 * 0.003609725)  # two 5020 motors through the linkage


def test_servos_hold_a_pose_stably_at_200_hz() -> None:
    """Weightless robot in the air, joints 0.3 rad off the stand pose: the servos converge, never ring."""
    body = G1Body(timestep=1 / 200)
    model, data = body.model, body.data
    armature = joint_armature(body.joint_names)
    model.dof_armature[body.dof_qvel] = armature
    kp, kd = armature_gains(armature)
    make_position_servos(model, body.actuator, body.dof_qvel, kp, kd)
    model.opt.gravity[:] = 0.0
    target = body.stand_pose()
    body.set_pose(
        np.array([0.0, 0.0, 2.0]),
        np.array([0.0, 0.0, 0.0, 1.0]),
        np.clip(target + 0.3, body.lower, body.upper),
    )
    data.ctrl[body.actuator] = target
    peak = 0.0
    for _ in range(400):  # 2 s
        mujoco.mj_step(model, data)
        peak = max(peak, float(np.abs(data.qvel[body.dof_qvel]).max()))
    assert np.abs(data.qpos[body.dof_qpos] - target).max() < 1e-2  # from 0.3 rad
    assert peak < 20.0  # overdamped: no ringing, no blow-up


def test_reference_bodies_follow_the_clip(reference: ReferenceMotion) -> None:
    assert reference.fps == 50.0 and reference.num_frames == 1 + int(239 * 50 / 30)
    pelvis = TRACKED_BODIES.index("pelvis")
    np.testing.assert_allclose(reference.body_pos[:, pelvis], reference.root_pos, atol=1e-9)
    velocity = np.diff(reference.body_pos, axis=0) * reference.fps
    np.testing.assert_allclose(reference.body_lin_vel[1:-1], 0.5 * (velocity[1:] + velocity[:-1]), atol=1e-9)


def test_tracking_terms_on_known_cases() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(1, 5, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (1, 5, 1))
    vel = rng.normal(size=(1, 5, 3))
    perfect = rewards.tracking_terms(pos, quat, vel, vel, pos, quat, vel, vel, anchor=0)
    assert all(v == pytest.approx(1.0) for v in perfect.values())
    shifted = rewards.tracking_terms(pos + [0.3, 0.0, 0.0], quat, vel, vel, pos, quat, vel, vel, anchor=0)
    assert shifted["anchor_pos"] == pytest.approx(np.exp(-1.0))  # 0.3 m off, std 0.3
    assert shifted["body_pos"] == pytest.approx(1.0)  # the whole body moved: only the anchor term pays
    yaw = quat_from_yaw(np.full((1, 5), 0.4))
    turned = rewards.tracking_terms(pos, quat_mul(yaw, quat), vel, vel, pos, quat, vel, vel, anchor=0)
    assert turned["anchor_ori"] == pytest.approx(np.exp(-(0.4**2) / 0.4**2))
    assert turned["body_ori"] == pytest.approx(1.0)


def test_joint_limit_excess() -> None:
    lower, upper = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    assert rewards.joint_limit_excess(np.array([[0.0, 1.0]]), lower, upper, 0.9)[0] == 0.0
    assert rewards.joint_limit_excess(np.array([[1.0, 1.0]]), lower, upper, 0.9)[0] == pytest.approx(0.1)


def test_anchor_orientation_error_identity() -> None:
    q = quat_from_yaw(np.array([0.7]))
    np.testing.assert_allclose(anchor_orientation_error(q, q), [[1, 0, 0, 1, 0, 0]], atol=1e-12)
    assert tracker_observation_size(29) == 154


def test_env_api_and_termination() -> None:
    env = gym.make("motion_vqvae/G1Track-v0")
    obs, info = env.reset(seed=0, options={"frame": 0})
    assert obs.shape == env.observation_space.shape == (154,) and np.isfinite(obs).all()
    assert info["frame"] == 0
    obs, reward, terminated, truncated, info = env.step(np.zeros(29, dtype=np.float32))
    assert (
        np.isfinite(reward)
        and reward > 0
        and not terminated
        and set(info["terms"]) == set(rewards.TRACKING_TERMS)
    )
    for step in range(200):  # full-scale flailing knocks it over: the terminations fire
        _, _, terminated, truncated, _ = env.step(
            np.where(step % 2, 3.0, -3.0) * np.ones(29, dtype=np.float32)
        )
        if terminated or truncated:
            break
    assert terminated and step < 100


def test_clip_end_truncates(reference: ReferenceMotion) -> None:
    batch = TrackingBatch(reference, TrackerConfig(num_envs=2), G1Body())
    batch.reset(frames=np.array([reference.num_frames - 3, 0]))
    _, _, terminated, truncated, _ = batch.step(np.zeros((2, 29)))
    assert not truncated.any()
    _, _, terminated, truncated, info = batch.step(np.zeros((2, 29)))
    assert truncated[0] and not terminated[0] and not truncated[1]
    assert batch.frame[0] != reference.num_frames - 1  # reset after the time-out


def test_adaptive_sampling_prefers_failing_bins(reference: ReferenceMotion) -> None:
    batch = TrackingBatch(reference, TrackerConfig(num_envs=1, adaptive_uniform=0.1), G1Body())
    assert len(batch.bin_first) == 8  # 8 s clip, 1 s bins
    batch.bin_failures[:] = 0.0
    batch.bin_failures[5] = 1.0
    frames = batch.start_frames(2000)
    share = np.mean((frames >= batch.bin_first[5]) & (frames < batch.bin_first[6]))
    assert share == pytest.approx(0.9 + 0.1 / 8, abs=0.03)


def test_batch_resume_is_exact(reference: ReferenceMotion) -> None:
    a = TrackingBatch(reference, TrackerConfig(num_envs=3), G1Body(), seed=1)
    a.reset()
    for _ in range(5):
        a.step(np.full((3, 29), 0.1))
    state = a.get_state()
    b = TrackingBatch(reference, TrackerConfig(num_envs=3), G1Body(), seed=9)
    b.set_state(state)
    np.testing.assert_array_equal(a.observation(), b.observation())
    for _ in range(60):  # runs through falls and adaptive resets
        oa, ra, *_ = a.step(np.full((3, 29), 0.3))
        ob, rb, *_ = b.step(np.full((3, 29), 0.3))
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
