"""BatchedTokenDecoder: rows equal single-env decoding with per-env resets from measured poses; the torch
safety filter keeps position, velocity and acceleration limits from the first frame; Isaac Gym adapter types.

Runs on a tiny tokenizer trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_tokenizer import NB_CODE, train_tiny_tokenizer

from motion_vqvae.envs import CheckpointTokenSource
from motion_vqvae.envs.batched import BatchedTokenDecoder
from motion_vqvae.envs.safety import TorchSafetyFilter, sim_joint_limits
from sim2real import SafetyLimits

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "motion_vqvae" / "assets" / "sample_motion.npy"
FPS = 30.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"), str(SAMPLE))


def _random_poses(limits: SafetyLimits, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(limits.lower, limits.upper, (n, len(limits.lower)))


def _assert_within(out: np.ndarray, start: np.ndarray, limits: SafetyLimits) -> None:
    """Positions inside limits; velocity and acceleration (standing still at ``start``) within limits."""
    path = np.concatenate([start[:, None], start[:, None], out], axis=1)  # (N, 2 + T, dof): v = 0 at start
    vel = np.diff(path, axis=1) * limits.fps
    acc = np.diff(path, n=2, axis=1) * limits.fps**2
    tol = 1e-4
    assert np.all(out >= limits.lower - 1e-6) and np.all(out <= limits.upper + 1e-6)
    assert np.all(np.abs(vel) <= limits.velocity * (1 + tol) + 1e-3), np.abs(vel).max()
    assert np.all(np.abs(acc) <= limits.acceleration * (1 + tol) + 1.0), (
        np.abs(acc) / limits.acceleration
    ).max()


def test_batched_rows_equal_single_env_decoding_with_resets(checkpoint: Path) -> None:
    num_envs, steps = 3, 6
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, NB_CODE, (steps, num_envs))
    poses = _random_poses(sim_joint_limits("g1_29dof", FPS), 2 * num_envs, rng).astype(np.float32)
    resets = {2: [1], 4: [0, 2]}  # step -> envs starting a new episode before that step
    start_pose = {(0, e): poses[e] for e in range(num_envs)}
    start_pose.update({(t, e): poses[num_envs + e] for t, envs in resets.items() for e in envs})
    batched = BatchedTokenDecoder.from_checkpoint(checkpoint, num_envs)
    batched.reset(current=poses[:num_envs])
    out = []
    for t in range(steps):
        if t in resets:
            batched.reset(torch.tensor(resets[t]), np.stack([start_pose[(t, e)] for e in resets[t]]))
        out.append(batched.step(torch.as_tensor(tokens[t])).numpy())
    out = np.stack(out, axis=1)  # (N, steps, fpt, dof)
    assert out.shape == (num_envs, steps, 4, 29)
    single = CheckpointTokenSource(checkpoint)
    for env in range(num_envs):
        for t in range(steps):
            if (t, env) in start_pose:
                single.reset(start_pose[(t, env)])
            np.testing.assert_allclose(out[env, t], single.step(int(tokens[t, env]))[1], atol=1e-5)


def test_decoded_tokens_stay_within_limits_from_random_poses(checkpoint: Path) -> None:
    rng = np.random.default_rng(1)
    num_envs, steps = 64, 60
    batched = BatchedTokenDecoder.from_checkpoint(checkpoint, num_envs)
    limits = sim_joint_limits("g1_29dof", FPS)
    start = _random_poses(limits, num_envs, rng)
    batched.reset(current=start)
    alternating = np.where(np.arange(steps)[:, None] % 2 == 0, 0, NB_CODE - 1) * np.ones(num_envs, int)
    random = rng.integers(0, NB_CODE, (steps, num_envs))
    tokens = np.where(np.arange(num_envs) < num_envs // 2, random, alternating)
    out = torch.cat([batched.step(tokens[t]) for t in range(steps)], dim=1).numpy()  # (N, steps * fpt, dof)
    _assert_within(out.astype(np.float64), start, limits)
    ramped = batched.interventions["velocity"] + batched.interventions["acceleration"]
    assert int(ramped.min()) > 0  # from random poses, every row had to be ramped


def test_filter_holds_limits_against_adversarial_targets() -> None:
    rng = np.random.default_rng(2)
    dof, rows = 29, 16
    full = sim_joint_limits("g1_29dof", FPS)
    limits = SafetyLimits(full.lower, full.upper, np.full(dof, 3.0), np.full(dof, 40.0), FPS)
    filt = TorchSafetyFilter(limits, rows, "cpu")
    start = _random_poses(limits, rows, rng)
    filt.reset(torch.arange(rows), torch.as_tensor(start, dtype=torch.float32))
    chunks = []
    for k in range(120):  # jumps between the extremes, far outside the limits, and NaNs
        raw = rng.choice([-10.0, 10.0], (rows, 4, dof)) if k % 3 else rng.uniform(-4, 4, (rows, 4, dof))
        raw[rng.random((rows, 4, dof)) < 0.05] = np.nan
        chunks.append(filt(torch.as_tensor(raw, dtype=torch.float32)).numpy())
    for _ in range(30):  # then a steady push past the upper limits: joints brake into them
        chunks.append(filt(torch.full((rows, 4, dof), 10.0)).numpy())
    out = np.concatenate(chunks, axis=1).astype(np.float64)
    _assert_within(out, start, limits)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, -1], np.broadcast_to(limits.upper, (rows, dof)), atol=1e-4)


def test_step_needs_a_measured_pose(checkpoint: Path) -> None:
    batched = BatchedTokenDecoder.from_checkpoint(checkpoint, 2)
    with pytest.raises(RuntimeError, match=r"rows \[0, 1\] have no measured pose"):
        batched.step(np.array([0, 1]))
    batched.reset(current=np.zeros((2, 29)))
    batched.step(np.array([0, 1]))
    batched.reset(torch.tensor([1]))  # a new episode without a pose: that row waits for one
    with pytest.raises(RuntimeError, match=r"rows \[1\]"):
        batched.step(np.array([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(1, 29\)"):
        batched.reset(torch.tensor([1]), np.zeros((2, 29)))


def test_bad_tokens_and_env_ids_raise(checkpoint: Path) -> None:
    batched = BatchedTokenDecoder.from_checkpoint(checkpoint, 2)
    batched.reset(current=np.zeros((2, 29)))
    with pytest.raises(ValueError, match=r"integers in \[0, 31\]"):
        batched.step(torch.tensor([0, NB_CODE]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        batched.step(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"env_ids must lie in \[0, 2\)"):
        batched.reset(torch.tensor([2]), np.zeros((1, 29)))


def test_multi_level_tokens_and_first_levels_only(tmp_path: Path) -> None:
    checkpoint = train_tiny_tokenizer(tmp_path, str(SAMPLE), quantizer="rvq", num_quantizers=2)
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, NB_CODE, (5, 3, 2))  # (steps, num_envs, streams)
    start = _random_poses(sim_joint_limits("g1_29dof", FPS), 3, rng)
    outputs = {}
    for levels in (None, 1):
        batched = BatchedTokenDecoder.from_checkpoint(checkpoint, 3, levels=levels)
        batched.reset(current=start)
        outputs[levels] = torch.cat([batched.step(tokens[t]) for t in range(5)], dim=1).numpy()
        single = CheckpointTokenSource(checkpoint, levels=levels)
        single.reset(start[1])
        row = np.concatenate([single.step(tokens[t, 1])[1] for t in range(5)])
        np.testing.assert_allclose(outputs[levels][1], row, atol=1e-5)
    coarse = BatchedTokenDecoder.from_checkpoint(checkpoint, 3, levels=1)
    coarse.reset(current=start)
    other_fine = tokens.copy()
    other_fine[..., 1] = rng.integers(0, NB_CODE, (5, 3))
    np.testing.assert_array_equal(  # with levels=1 the second level is not decoded at all
        torch.cat([coarse.step(other_fine[t]) for t in range(5)], dim=1).numpy(), outputs[1]
    )
    assert np.abs(outputs[None] - outputs[1]).max() > 1e-3
    with pytest.raises(ValueError, match=r"shape \(3, 2\) \(streams \['body/L0', 'body/L1'\]\)"):
        coarse.step(np.zeros(3, int))


def test_isaacgym_adapter_type_checks_against_the_stubs(tmp_path: Path) -> None:
    adapter = REPO / "motion_vqvae" / "envs" / "isaacgym_adapter.py"
    bad = tmp_path / "bad_adapter.py"  # proves the stubs are really read: a wrong argument type is caught
    bad.write_text(
        "from isaacgym import gymapi\n\n\ndef push(gym: gymapi.Gym, sim: gymapi.Sim) -> None:\n"
        "    gym.set_dof_position_target_tensor(sim, 3.0)\n"
    )
    script = [sys.executable, str(REPO / "scripts" / "typecheck_isaacgym.py"), str(adapter), str(bad)]
    result = subprocess.run(script, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1 and len(errors) == 1, result.stdout
    assert "bad_adapter.py:5" in errors[0] and 'expected "Tensor"' in errors[0]
