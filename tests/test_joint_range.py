"""Decoded joint angles stay inside the robot's ranges by construction (the model's bounded output head)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_tokenizer import train_tiny_tokenizer

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.data import sample_motion_path
from motion_vqvae.export.streaming import StreamingDecoder
from motion_vqvae.models.vqvae import VQVAE, JointRangeBound
from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint
from sim2real import load_robot


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("bounded"), str(sample_motion_path()), iters=5)


def _ranges(agent: MVQVAEAgent) -> tuple[np.ndarray, np.ndarray]:
    robot = load_robot(agent.cfg.robot)
    names = agent.layout.joint_names
    return np.array([robot.joints[n].lower for n in names]), np.array([robot.joints[n].upper for n in names])


def _extreme(agent: MVQVAEAgent) -> None:
    """Codebook blown up 1000x: every token now decodes far outside anything seen in training."""
    with torch.no_grad():
        for buffer in agent.model.quantizer.buffers():
            if buffer.is_floating_point():
                buffer.mul_(1000.0)


def test_extreme_tokens_decode_inside_the_joint_ranges(checkpoint: Path) -> None:
    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    lower, upper = _ranges(agent)
    _extreme(agent)
    tokens = np.arange(agent.token_spec.nb_code)
    dof = agent.decode(tokens).dof  # (T, N) radians
    assert np.ptp(dof, axis=0).max() > 0.1, "the blown-up codebook must decode to varied, extreme poses"
    assert np.all(dof >= lower) and np.all(dof <= upper)
    margin = 0.01 * (upper - lower)  # the soft bound approaches a limit, never reaches it
    assert np.any((dof - lower < margin) | (upper - dof < margin)), "extreme tokens must saturate a joint"
    streaming = StreamingDecoder(agent.model).eval()
    frames, _ = streaming.step(torch.as_tensor(tokens[:8]), streaming.init_state(8))
    frames = agent.layout.denormalize(frames.detach().double().numpy())[..., agent.layout.slices["dof_pos"]]
    assert np.all(frames >= lower) and np.all(frames <= upper)


def test_unbounded_model_leaves_the_ranges_so_the_bound_is_what_holds_them(checkpoint: Path) -> None:
    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    lower, upper = _ranges(agent)
    _extreme(agent)
    agent.model.bound = None
    dof = agent.decode(np.arange(agent.token_spec.nb_code)).dof
    assert np.any(dof < lower) or np.any(dof > upper)


def test_checkpoint_without_a_joint_range_keeps_its_head_and_says_so(checkpoint: Path, tmp_path, caplog):
    state = load_checkpoint(checkpoint)
    state["model_hparams"].pop("joint_range")
    old = tmp_path / "old.pt"
    save_checkpoint(state, old)
    with caplog.at_level(logging.WARNING):
        agent = MVQVAEAgent.from_checkpoint(old, device="cpu")
    assert agent.model.bound is None
    assert "predates bounded joint ranges" in caplog.text


def test_the_bound_is_the_identity_inside_its_knees_and_bends_into_the_limits() -> None:
    """Data that sits at a limit (the G1's ankle rolls) costs little; the interior is untouched."""
    bound = JointRangeBound({"columns": [1, 3], "lower": [-1.0, 0.0], "upper": [1.0, 4.0]})
    inside = torch.tensor([[[7.0, -0.89, 3.79, 5.0]]])
    assert torch.equal(bound(inside), inside)  # knees at 5 % of each range: -0.9 / 0.9 and 0.2 / 3.8
    raw = torch.linspace(-50.0, 50.0, 2001)
    out = bound(torch.stack([raw] * 4, dim=-1)[None])[0]
    for column, (low, high) in zip((1, 2), ((-1.0, 1.0), (0.0, 4.0)), strict=True):
        eps = 1e-6  # float32 rounding at the limit; real ranges are set 1e-4 rad inside the robot's
        assert torch.all(out[:, column] >= low - eps) and torch.all(out[:, column] <= high + eps)
        assert torch.all(torch.diff(out[:, column]) >= 0)  # monotonic: a larger raw value never decodes lower
    assert torch.equal(out[:, 0], raw) and torch.equal(out[:, 3], raw)  # other columns pass through
    at_limit = bound(torch.tensor([[[0.0, 1.2, 0.0, 0.0]]]))[0, 0, 1]  # 0.3 past the knee
    assert 1.0 - at_limit < 0.003


def test_joint_range_must_fit_the_features() -> None:
    with pytest.raises(ValueError, match="one bound pair per dof_pos column"):
        VQVAE(8, fps=30.0, joint_range={"columns": [4, 8], "lower": [-1.0] * 3, "upper": [1.0] * 3})
    with pytest.raises(ValueError, match="lower must be below upper"):
        VQVAE(8, fps=30.0, joint_range={"columns": [6, 8], "lower": [0.0, 1.0], "upper": [1.0, 1.0]})
