"""Physics-aware losses: known answers on synthetic windows (planted, sliding, sunk feet; a shifted mass)."""

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
from motion_vqvae.training.body_loss import BodySpaceLoss, Posed
from motion_vqvae.training.physics_loss import CONTACT_HEIGHT_M, PhysicsLoss, physics_ramp, sole_points

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny_tokenizer import TINY  # noqa: E402


@pytest.fixture(scope="module")
def setup() -> tuple[BodySpaceLoss, PhysicsLoss, Posed]:
    """The sample clip's first 16 frames, its root lowered so that its lowest sole point is on z = 0."""
    sample = load_motions(sample_motion_path())[0]
    layout = FeatureLayout.for_motion(sample)
    feats = layout.from_motion(sample)
    layout.fit_normalizer([feats])
    body = BodySpaceLoss(layout, None, sample.fps)
    physics = PhysicsLoss(body.kinematics, None)
    x = torch.as_tensor(layout.normalize(feats[:16]))[None]
    posed = body.posed(x)
    lowest = physics.soles(posed)[..., 2].min()
    return body, physics, _shifted(posed, torch.tensor([0.0, 0.0, -float(lowest)]))


def _shifted(posed: Posed, offset: torch.Tensor) -> Posed:
    """The same bodies moved by ``offset`` (``(3,)`` or ``(T, 3)`` metres)."""
    offset = offset if offset.dim() == 1 else offset[None, :, None]
    return Posed(posed.world + offset, posed.local, posed.rotations)


def test_sole_points_are_the_bottom_of_the_foot_boxes() -> None:
    bodies, points = sole_points(None)
    assert len(set(bodies)) == 2 and len(points) == 8
    np.testing.assert_allclose(points[:, 2], -0.035)  # box centre -0.0225, half height 0.0125


def test_the_reference_against_itself_scores_the_floor_only(setup) -> None:
    _, physics, posed = setup
    assert (physics.soles(posed)[..., 2] < CONTACT_HEIGHT_M).any(), "the sample must stand somewhere"
    terms = physics(posed, posed)
    assert terms["foot_skate_mm"].item() == pytest.approx(
        0.1, abs=1e-6
    )  # the reference's own skate is no error
    assert terms["foot_ground_mm"].item() == pytest.approx(0.1, abs=1e-6)  # the smooth floor
    assert terms["com_support_mm"].item() == pytest.approx(0.1, abs=1e-6)


def test_a_sliding_body_skates_by_its_speed_and_a_sunk_one_by_its_depth(setup) -> None:
    _, physics, posed = setup
    slide = torch.zeros(16, 3, dtype=torch.float64)
    slide[:, 0] = torch.arange(16) * 0.004  # 4 mm per frame, the mass goes along with the feet
    terms = physics(_shifted(posed, slide), posed)
    assert terms["foot_skate_mm"].item() == pytest.approx(4.0, abs=0.01)  # 4 mm/frame more than the reference
    assert terms["com_support_mm"].item() == pytest.approx(0.1, abs=1e-6), "CoM relative to the soles"
    sunk = physics(_shifted(posed, torch.tensor([0.0, 0.0, -0.01])), posed)["foot_ground_mm"].item()
    assert sunk > 10.0  # 10 mm height error on planted points, plus 10 mm below the floor


def test_the_terms_have_gradients_and_train(tmp_path) -> None:
    config = AgentConfig.from_dict(
        {**TINY, "total_iter": 2, "print_iter": 1, "eval_every": 2, "loss_foot_skate": 0.01, "loss_com": 0.01}
    )
    agent = MVQVAEAgent(config, run_dir=tmp_path)
    agent.setup_from_file()
    agent.fit()
    logged = (tmp_path / "metrics.jsonl").read_text()
    assert '"foot_skate_mm"' in logged and '"com_support_mm"' in logged and '"foot_ground_mm"' in logged


def test_physics_weights_ramp_in_over_their_warmup_share() -> None:
    assert [physics_ramp(i, 1000, 0.5) for i in (0, 250, 500, 900)] == [0.0, 0.5, 1.0, 1.0]
    assert physics_ramp(0, 1000, 0.0) == 1.0
