"""G1 environments: gymnasium and stable-baselines3 checks, seeding, vector envs, PD standing, rendering."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import motion_vqvae.envs  # noqa: F401  (registers the environments)
from motion_vqvae.envs.render import G1Renderer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import visualize  # noqa: E402

ENV_IDS = ["motion_vqvae/G1Kinematic-v0", "motion_vqvae/G1PD-v0"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_envs_pass_gymnasium_and_sb3_checks(env_id: str) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(gym.make(env_id).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id), warn=False, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_resets_reproduce_episodes(env_id: str) -> None:
    def rollout(seed: int) -> np.ndarray:
        env = gym.make(env_id)
        env.action_space.seed(seed)
        obs = [env.reset(seed=seed)[0]]
        obs += [env.step(env.action_space.sample())[0] for _ in range(5)]
        return np.array(obs)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


@pytest.mark.parametrize("vector", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_vector_envs(vector) -> None:
    envs = vector([lambda: gym.make("motion_vqvae/G1PD-v0") for _ in range(2)])
    obs, _ = envs.reset(seed=0)
    obs2, rewards, terminated, truncated, _ = envs.step(envs.action_space.sample())
    assert obs.shape == obs2.shape == (2, 66) and rewards.shape == (2,)
    envs.close()


def test_pd_env_stands_from_the_bent_knee_pose_and_support_holds_a_limp_robot() -> None:
    env = gym.make("motion_vqvae/G1PD-v0")
    env.reset(seed=0)
    stand = env.unwrapped.stand_pose.astype(np.float32)
    for _ in range(150):  # 5 s
        _, reward, terminated, _, info = env.step(stand)
        assert not terminated
    assert info["height"] > 0.7 and info["upright"] > 0.99 and reward > 0.99
    zero = np.zeros(29, np.float32)  # knees straight, ankles weak: falls without help
    limp = gym.make("motion_vqvae/G1PD-v0", kp=np.full(29, 5.0), kd=np.full(29, 0.5))
    held = gym.make("motion_vqvae/G1PD-v0", kp=np.full(29, 5.0), kd=np.full(29, 0.5), root_support=3000.0)
    falls = [_steps_until_fall(e, zero) for e in (limp, held)]
    assert falls[0] < 150 and falls[1] == 150, falls


def _steps_until_fall(env: gym.Env, action: np.ndarray, steps: int = 150) -> int:
    env.reset(seed=0)
    for k in range(steps):
        if env.step(action)[2]:
            return k
    return steps


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_envs_refuse_nonfinite_actions_naming_the_entry(env_id: str, value: float) -> None:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    action = env.action_space.sample()
    action[8] = value
    entry = {
        "motion_vqvae/G1Kinematic-v0": "left_hip_pitch_joint dof_pos",
        "motion_vqvae/G1PD-v0": "right_hip_yaw",
    }
    with pytest.raises(ValueError, match=rf"action must be finite; got action\[8\] \({entry[env_id]}"):
        env.step(action)


def test_a_fallen_or_diverged_pd_episode_stays_terminated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory on a warning
    limp = gym.make("motion_vqvae/G1PD-v0", kp=np.full(29, 1.0), kd=np.full(29, 0.1)).unwrapped
    limp.reset(seed=0)
    stand = limp.stand_pose.astype(np.float32)
    assert _steps_until_fall(limp, stand) < 30
    for _ in range(3):  # no resurrection: still terminated, no reward, until reset()
        _, reward, terminated, _, info = limp.step(stand)
        assert terminated and reward == 0.0 and info["height"] < limp.min_height
    env = gym.make("motion_vqvae/G1PD-v0").unwrapped
    env.reset(seed=0)
    env.body.data.qvel[:] = 1e12  # MuJoCo finds the state unstable and resets it to the initial pose
    _, reward, terminated, _, info = env.step(stand)
    assert info["diverged"] and terminated and reward == 0.0
    assert info["height"] > env.min_height  # the reset pose looks healthy: only the warning tells
    assert env.step(stand)[2]
    env.reset(seed=0)
    assert not env.step(stand)[2]


def test_root_support_holds_the_pelvis_still_at_200_hz() -> None:
    env = gym.make("motion_vqvae/G1PD-v0", physics_hz=200.0, root_support=3000.0).unwrapped
    env.reset(seed=0)
    body, spin = env.body, []
    for _ in range(60):  # 2 s holding the stand pose
        env.step(env.stand_pose.astype(np.float32))
        spin.append(np.abs(body.data.qvel[body.root_qvel + 3 : body.root_qvel + 6]).max())
    assert max(spin) < 1.0 and spin[-1] < 0.1, (max(spin), spin[-1])  # was ~27-50 rad/s (issue 22)


def test_kinematic_env_integrates_root_velocity_and_rewards_tracking() -> None:
    env = gym.make("motion_vqvae/G1Kinematic-v0").unwrapped
    obs, _ = env.reset(seed=1)
    layout = env.layout
    frame = np.zeros(layout.dim, np.float32)
    frame[layout.slices["root_height"]] = 0.78
    frame[layout.slices["root_lin_vel"]] = [*env.command[:2], 0.0]
    frame[layout.slices["yaw_rate"]] = env.command[2]
    start = env.body.data.qpos[:2].copy()
    _, reward, *_ = env.step(frame)
    assert reward == pytest.approx(1.0)
    env.step(frame)
    moved = np.linalg.norm(env.body.data.qpos[:2] - start)
    assert moved == pytest.approx(np.linalg.norm(env.command[:2]) / 30.0, rel=1e-6)
    frame[layout.slices["root_lin_vel"]] = [env.command[0] + 1.0, env.command[1], 0.0]
    assert env.step(frame)[1] < 1e-5
    with pytest.raises(ValueError, match="one motion frame of shape"):
        env.step(np.zeros(3))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_rendering_without_gl(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 5, "the figure is drawn"
    stick = G1Renderer(env.unwrapped.body.model, backend="matplotlib").render(env.unwrapped.body.data)
    assert stick.shape[2] == 3 and stick.std() > 5


def test_visualize_motion_file_to_gif(tmp_path: Path, kimodo_dir: Path) -> None:
    out = tmp_path / "walk.gif"
    clip = sorted(kimodo_dir.glob("*.csv"))[0]
    code = visualize.main(
        ["--motion", str(clip), "--quat-order", "wxyz", "--out", str(out), "--max-frames", "8"]
    )
    assert code == 0 and out.stat().st_size > 5_000
