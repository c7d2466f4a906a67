"""The body-space loss: torch kinematics equals MuJoCo's, and the loss scores what the metrics score."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import load_motions, sample_motion_path
from motion_vqvae.features import FeatureLayout
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.metrics import body_metrics, to_heading_frame
from motion_vqvae.rotations import quat_to_expmap
from motion_vqvae.training.body_loss import BodySpaceLoss, TorchKinematics, expmap_matrix

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny_tokenizer import TINY  # noqa: E402


@pytest.fixture(scope="module")
def sample():
    return load_motions(sample_motion_path())[0]


def _layout(motion, prefer_expmap: bool) -> tuple[FeatureLayout, np.ndarray]:
    layout = FeatureLayout.for_motion(motion, prefer_expmap=prefer_expmap)
    feats = layout.from_motion(motion)
    layout.fit_normalizer([feats])
    return layout, feats


def _normalized(layout: FeatureLayout, feats: np.ndarray) -> torch.Tensor:
    norm = layout.normalizer
    return torch.as_tensor((feats - norm.mean) / norm.std, dtype=torch.float32)[None]


def test_torch_kinematics_equals_mujoco(sample) -> None:
    fk = ForwardKinematics()
    reference = fk.body_positions(sample)
    tk = TorchKinematics(None, list(sample.joint_names))
    rot = expmap_matrix(torch.as_tensor(quat_to_expmap(sample.root_quat), dtype=torch.float64))
    got = tk.double()(torch.as_tensor(sample.root_pos), rot, torch.as_tensor(sample.dof))
    assert tk.body_names == fk.body_names
    np.testing.assert_allclose(got.numpy(), reference, atol=1e-7)  # float32 model constants: 0.1 um


@pytest.mark.parametrize("prefer_expmap", [True, False])
def test_window_bodies_are_the_decoded_motions_bodies(sample, prefer_expmap: bool) -> None:
    """Integrating features in torch gives the bodies (world and heading frame) the metrics see."""
    layout, feats = _layout(sample, prefer_expmap)
    motion = layout.to_motion(
        feats, fps=sample.fps, start_pos=np.zeros(3), start_yaw=0.0, joint_names=sample.joint_names
    )
    reference = ForwardKinematics().body_positions(motion)
    loss = BodySpaceLoss(layout, None, sample.fps).double()
    world, local = loss.bodies(_normalized(layout, feats).double())
    np.testing.assert_allclose(world[0].numpy(), reference, atol=1e-6)
    heading = to_heading_frame(reference, motion.root_pos, motion.root_quat)
    np.testing.assert_allclose(local[0].numpy(), heading, atol=1e-6)


def test_loss_is_the_metric_and_zero_on_the_reference(sample) -> None:
    layout, feats = _layout(sample, True)
    loss = BodySpaceLoss(layout, None, sample.fps).double()
    x = _normalized(layout, feats).double()
    accel, pos = loss(x, x)
    assert float(accel) == float(pos) == pytest.approx(0.1)  # the loss's smooth floor, 0.1 mm

    noisy = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    accel, pos = loss(noisy.requires_grad_(), x)
    noisy_motion = layout.to_motion(
        noisy[0].detach().numpy() * layout.normalizer.std + layout.normalizer.mean,
        fps=sample.fps,
        start_pos=np.zeros(3),
        start_yaw=0.0,
        joint_names=sample.joint_names,
    )
    clean_motion = layout.to_motion(
        feats, fps=sample.fps, start_pos=np.zeros(3), start_yaw=0.0, joint_names=sample.joint_names
    )
    fk = ForwardKinematics()
    metrics = body_metrics(
        fk.body_positions(noisy_motion),
        fk.body_positions(clean_motion),
        noisy_motion.root_pos,
        clean_motion.root_pos,
        noisy_motion.root_quat,
        clean_motion.root_quat,
    )
    assert accel.item() == pytest.approx(metrics["accel_error_mm"], rel=3e-3)  # the floor adds < 0.3 %
    assert pos.item() == pytest.approx(metrics["mpjpe_local_mm"], rel=3e-3)
    (accel + pos).backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0


def test_body_loss_keys_train_and_are_logged(tmp_path) -> None:
    config = AgentConfig.from_dict(
        {
            **TINY,
            "total_iter": 4,
            "print_iter": 2,
            "eval_every": 4,
            "loss_body_accel": 0.01,
            "loss_body_pos": 0.0,
        }
    )
    agent = MVQVAEAgent(config, run_dir=tmp_path)
    agent.setup_from_file()
    agent.fit()
    logged = (tmp_path / "metrics.jsonl").read_text()
    assert '"body_accel_mm"' in logged and '"body_pos_mm"' in logged


def test_unknown_joint_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not in this model.*loss_body_accel=0"):
        TorchKinematics(None, ["left_hip_pitch_joint", "tail_joint"])


def test_windows_of_a_real_clip_score_like_the_metrics(g1_moves_dir: Path) -> None:
    """A retargeted g1_moves dance at 30 fps: the windowed bodies are its decoded motion's, as scored."""
    clip = load_motions(g1_moves_dir / "J_Dance5_Hype.csv", fps=60, target_fps=30, robot="g1_29dof")[0]
    layout, feats = _layout(clip, True)
    motion = layout.to_motion(
        feats, fps=clip.fps, start_pos=np.zeros(3), start_yaw=0.0, joint_names=clip.joint_names
    )
    world, _ = BodySpaceLoss(layout, None, clip.fps).bodies(_normalized(layout, feats))
    np.testing.assert_allclose(world[0].numpy(), ForwardKinematics().body_positions(motion), atol=1e-6)
