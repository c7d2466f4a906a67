"""TokenActionWrapper over both G1 envs, from a checkpoint and from an ONNX export; the PPO script.

Runs on a tiny tokenizer trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from _tiny_tokenizer import NB_CODE, train_tiny_tokenizer
from gymnasium.utils.env_checker import check_env

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.envs import TokenActionWrapper, load_token_source
from motion_vqvae.envs.policy_training import PolicyConfig, train_policy
from motion_vqvae.envs.safety import TorchSafetyFilter, sim_joint_limits
from motion_vqvae.export.targets import JointTargetHead
from sim2real import JointMap

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import export_onnx  # noqa: E402

SAMPLE = REPO / "motion_vqvae" / "assets" / "sample_motion.npy"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"), str(SAMPLE))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, checkpoint: Path) -> Path:
    out = tmp_path_factory.mktemp("exports") / "tiny"
    assert export_onnx.main(["--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    return out


def _tokens(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NB_CODE, n)


def test_wrapped_envs_pass_api_checks(checkpoint: Path) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for env_id in ("motion_vqvae/G1Kinematic-v0", "motion_vqvae/G1PD-v0"):
        wrapped = TokenActionWrapper(gym.make(env_id), checkpoint, observe_token=True)
        assert wrapped.action_space == gym.spaces.Discrete(NB_CODE)
        check_env(wrapped, skip_render_check=True)
        sb3_check_env(TokenActionWrapper(gym.make(env_id), checkpoint), warn=False, skip_render_check=True)


def test_pd_targets_are_the_streamed_decode_ramped_from_the_measured_pose(checkpoint: Path) -> None:
    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    tokens = _tokens(6)
    limits = sim_joint_limits(agent.cfg.robot, 30.0)
    head = JointTargetHead(agent.layout, JointMap.identity(29), limits.lower, limits.upper)
    with torch.no_grad():
        whole = head(agent.model.decode(torch.as_tensor(tokens)[None]))[0]  # (1, 24, 29) clamped targets
    env = TokenActionWrapper(
        gym.make("motion_vqvae/G1PD-v0", root_support=3000.0, reset_noise=0.3), checkpoint
    )
    for episode in range(2):  # the second episode checks the decoder state is reset with the env
        env.reset(seed=episode)
        start = env.unwrapped.joint_positions()
        expected = TorchSafetyFilter(limits, 1, "cpu")
        expected.reset(torch.tensor([0]), torch.as_tensor(start[None], dtype=torch.float32))
        fed = []
        for token in tokens:
            _, reward, terminated, truncated, info = env.step(token)
            assert info["token"] == token and info["inner_steps"] == 4 and 0 < reward <= 4
            fed.append(info["targets"])
        fed = np.concatenate(fed)
        np.testing.assert_allclose(fed, expected(whole)[0].numpy(), atol=2e-5)
        first_step = np.abs(fed[0] - start)  # the robot stands still at reset: one frame of max acceleration
        assert np.all(first_step <= limits.acceleration / 30.0**2 + 1e-5), first_step.max()
        assert np.abs(fed[-1] - np.clip(whole[0, -1].numpy(), limits.lower, limits.upper)).max() < 0.1


def test_kinematic_env_travels_as_the_tokens_say(checkpoint: Path) -> None:
    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    env = TokenActionWrapper(gym.make("motion_vqvae/G1Kinematic-v0"), checkpoint)
    env.reset(seed=0)
    body = env.unwrapped.body
    start = body.data.qpos[:3].copy()
    yaw0 = env.unwrapped._yaw
    tokens = _tokens(8, seed=1)
    for token in tokens[:-1]:
        env.step(token)
    env.step(tokens[-1])
    decoded = agent.decode(tokens, start_pose=(start, yaw0))  # frame t is placed after step t
    np.testing.assert_allclose(body.data.qpos[:2], decoded.root_pos[-1, :2], atol=1e-4)


def test_export_dir_and_decoder_object_match_the_checkpoint(checkpoint: Path, export_dir: Path) -> None:
    from sim2real import TokenDecoder

    outputs = []
    for tokenizer in (checkpoint, export_dir, TokenDecoder(export_dir)):
        env = TokenActionWrapper(
            gym.make("motion_vqvae/G1PD-v0", root_support=3000.0, reset_noise=0.3), tokenizer
        )
        env.reset(seed=0)
        outputs.append(np.concatenate([env.step(t)[4]["targets"] for t in _tokens(5)]))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4)  # torch and runtime filters agree
    np.testing.assert_array_equal(outputs[2], outputs[1])


def test_play_step_ramps_from_the_given_pose(export_dir: Path, capsys) -> None:
    from sim2real import TokenDecoder
    from sim2real import play as play_cli

    decoder = TokenDecoder(export_dir)
    pose = np.clip(0.4, decoder.limits.lower, decoder.limits.upper)
    args = [str(export_dir), "--tokens", "3,17,17,30", "--step", "--current", ",".join(map(str, pose))]
    assert play_cli.main(args) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    first = np.array([float(v) for v in rows[0][2:]])
    first_step = np.abs(first - pose)  # standing still at the pose: one frame of maximum acceleration
    assert len(rows) == 16 and np.all(first_step <= decoder.limits.acceleration / decoder.fps**2 + 1e-6)
    assert play_cli.main([*args[:-1], "0.1,0.2"]) == 2
    assert "current has 2 joint values, g1_29dof has 29" in capsys.readouterr().err


def test_interpolation_for_another_control_rate(checkpoint: Path) -> None:
    plain = TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), checkpoint)
    fast = TokenActionWrapper(
        gym.make("motion_vqvae/G1PD-v0", control_fps=60, root_support=3000.0), checkpoint, observe_token=True
    )
    plain.reset(seed=0)
    fast.reset(seed=0)
    steps, phases = [], []
    for token in _tokens(4):
        a = plain.step(token)[4]["targets"]
        obs, _, _, _, info = fast.step(token)
        steps.append(info["inner_steps"])
        phases.append(obs[-1])
        np.testing.assert_allclose(info["targets"][1::2], a, atol=1e-6)  # every second one is a frame
    assert steps == [8, 8, 8, 8] and phases == [0.5] * 4
    slow = TokenActionWrapper(
        gym.make("motion_vqvae/G1PD-v0", control_fps=50, root_support=3000.0), checkpoint
    )
    slow.reset(seed=0)
    counts = [slow.step(t)[4]["inner_steps"] for t in _tokens(6)]
    assert sum(counts) == 40 and set(counts) == {6, 7}  # 4 frames at 30 fps = 6.67 steps at 50 Hz


def test_latent_actions_snap_to_the_nearest_code(checkpoint: Path) -> None:
    env = TokenActionWrapper(gym.make("motion_vqvae/G1Kinematic-v0"), checkpoint, action_mode="latent")
    book = load_token_source(checkpoint).codebook
    assert env.action_space.shape == (book.shape[1],)
    env.reset(seed=0)
    info = env.step((book[7] + 1e-4).astype(np.float32))[4]
    assert info["token"] == 7
    for value in (np.nan, np.inf, 1e30, float(env.action_space.high[2]) + 1e-3):
        latent = book[7].astype(np.float32).copy()
        latent[2] = value
        with pytest.raises(ValueError, match=r"latent action\[2\] = .* not finite or outside"):
            env.step(latent)
    edge = np.clip(book[7] * 100, env.action_space.low, env.action_space.high).astype(np.float32)
    assert 0 <= env.step(edge)[4]["token"] < NB_CODE  # the Box's corners are valid latents
    with pytest.raises(ValueError, match="must be one of"):
        TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0"), checkpoint, action_mode="joints")
    with pytest.raises(ValueError, match=r"token must lie in \[0, 31\] for each of the 1 streams"):
        TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0"), checkpoint).step(NB_CODE)


def test_episode_end_stops_a_token_early(checkpoint: Path) -> None:
    env = TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0", max_episode_steps=6), checkpoint)
    env.reset(seed=0)
    assert env.step(0)[4]["inner_steps"] == 4
    _, _, terminated, truncated, info = env.step(0)
    assert truncated and info["inner_steps"] == 2


def test_async_vector_env_of_wrapped_envs(export_dir: Path) -> None:
    def make() -> gym.Env:
        return TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0"), export_dir)

    envs = gym.vector.AsyncVectorEnv([make, make])
    envs.reset(seed=0)
    _, rewards, *_ = envs.step(np.array([1, 2]))
    assert rewards.shape == (2,) and np.all(rewards > 0)
    envs.close()


def test_train_policy_writes_results_curve_and_gif(checkpoint: Path, tmp_path: Path) -> None:
    cfg = PolicyConfig(timesteps=256, num_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_episodes=1)
    results = train_policy(checkpoint, tmp_path, cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["mean_return"] == results["mean_return"] > 0
    assert 0 < saved["random_token_mean_return"] <= 300
    assert (tmp_path / "learning_curve.png").stat().st_size > 10_000
    assert (tmp_path / "policy.gif").stat().st_size > 10_000


def test_train_policy_time_budget_reports_the_steps_really_taken(checkpoint: Path, tmp_path: Path) -> None:
    cfg = PolicyConfig(
        timesteps=10**6, num_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_episodes=1, time_budget_s=3.0
    )
    results = train_policy(checkpoint, tmp_path, cfg)
    steps = results["trained_timesteps"]
    assert 0 < steps < 10**5, steps
    assert all(point <= steps for point, _ in results["learning_curve"]), results["learning_curve"]


@pytest.fixture(scope="module")
def rvq_checkpoint(tmp_path_factory) -> Path:
    return train_tiny_tokenizer(
        tmp_path_factory.mktemp("rvq"), str(SAMPLE), quantizer="rvq", num_quantizers=2
    )


def _whole_decode_filtered(
    checkpoint: Path, tokens: np.ndarray, start: np.ndarray, levels: int | None
) -> np.ndarray:
    """The whole-sequence torch decode of ``tokens`` ([T, S]), through the safety filter from ``start``."""
    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    limits = sim_joint_limits(agent.cfg.robot, 30.0)
    head = JointTargetHead(agent.layout, JointMap.identity(29), limits.lower, limits.upper)
    with torch.no_grad():
        whole = head(agent.model.decode(torch.as_tensor(tokens)[None], levels=levels))[0]
    expected = TorchSafetyFilter(limits, 1, "cpu")
    expected.reset(torch.tensor([0]), torch.as_tensor(start[None], dtype=torch.float32))
    return expected(whole)[0].numpy()


def test_multi_level_tokens_are_multidiscrete_and_decode_as_the_model(
    rvq_checkpoint: Path, tmp_path: Path
) -> None:
    env = TokenActionWrapper(
        gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), rvq_checkpoint, observe_token=True
    )
    assert env.action_space == gym.spaces.MultiDiscrete([NB_CODE, NB_CODE])
    assert env.observation_space.shape[0] == env.env.observation_space.shape[0] + 2 * NB_CODE + 1
    check_env(env, skip_render_check=True)
    tokens = np.random.default_rng(3).integers(0, NB_CODE, (5, 2))
    for levels, space in ((None, env.action_space), (1, gym.spaces.Discrete(NB_CODE))):
        wrapped = TokenActionWrapper(
            gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), rvq_checkpoint, levels=levels
        )
        assert wrapped.action_space == space
        wrapped.reset(seed=1)
        start = wrapped.unwrapped.joint_positions()
        actions = tokens if levels is None else tokens[:, 0]
        fed = np.concatenate([wrapped.step(a)[4]["targets"] for a in actions])
        used = tokens if levels is None else np.stack([tokens[:, 0], np.zeros(5, int)], axis=1)
        np.testing.assert_allclose(
            fed, _whole_decode_filtered(rvq_checkpoint, used, start, levels), atol=2e-5
        )
    coarse_fine = np.abs(fed - _whole_decode_filtered(rvq_checkpoint, tokens, start, None)).max()
    assert coarse_fine > 1e-3  # the second level changes the motion: levels=1 really leaves it out
    out = tmp_path / "rvq_export"
    assert export_onnx.main(["--checkpoint", str(rvq_checkpoint), "--out", str(out)]) == 0
    exported = TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), out)
    assert exported.action_space == env.action_space
    exported.reset(seed=1)
    onnx_fed = np.concatenate([exported.step(a)[4]["targets"] for a in tokens])
    np.testing.assert_allclose(
        onnx_fed, _whole_decode_filtered(rvq_checkpoint, tokens, start, None), atol=1e-4
    )
    with pytest.raises(ValueError, match="decodes 2 of 2 levels, asked for 1"):
        TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0"), out, levels=1)
    with pytest.raises(ValueError, match=r"token must lie in \[0, 31\] for each of the 2 streams"):
        env.step(np.array([0, NB_CODE]))


def test_sb3_ppo_trains_on_multidiscrete_tokens(rvq_checkpoint: Path) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make() -> gym.Env:
        return TokenActionWrapper(gym.make("motion_vqvae/G1PD-v0", root_support=3000.0), rvq_checkpoint)

    venv = DummyVecEnv([make, make])
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert model.num_timesteps == 64 and action.shape == (2, 2) and np.all((0 <= action) & (action < NB_CODE))
