"""BatchedTokenDecoder equals single-env decoding row by row, with per-env resets; Isaac Gym adapter types."""

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

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, g1_moves_dir: Path) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"), str(g1_moves_dir / "B_*Karate.csv"))


def test_batched_rows_equal_single_env_decoding_with_resets(checkpoint: Path) -> None:
    num_envs, steps = 3, 6
    tokens = np.random.default_rng(0).integers(0, NB_CODE, (steps, num_envs))
    resets = {2: [1], 4: [0, 2]}  # step -> envs starting a new episode before that step
    batched = BatchedTokenDecoder.from_checkpoint(checkpoint, num_envs)
    out = []
    for t in range(steps):
        if t in resets:
            batched.reset(torch.tensor(resets[t]))
        out.append(batched.step(torch.as_tensor(tokens[t])).numpy())
    out = np.stack(out, axis=1)  # (N, steps, fpt, dof)
    assert out.shape == (num_envs, steps, 4, 29)
    single = CheckpointTokenSource(checkpoint)
    for env in range(num_envs):
        single.reset()
        for t in range(steps):
            if env in resets.get(t, []):
                single.reset()
            np.testing.assert_allclose(out[env, t], single.step(int(tokens[t, env]))[1], atol=1e-5)


def test_bad_tokens_and_env_ids_raise(checkpoint: Path) -> None:
    batched = BatchedTokenDecoder.from_checkpoint(checkpoint, 2)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 31\]"):
        batched.step(torch.tensor([0, NB_CODE]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        batched.step(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"env_ids must lie in \[0, 2\)"):
        batched.reset(torch.tensor([2]))


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
