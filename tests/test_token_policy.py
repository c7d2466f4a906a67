"""The effect head: tokens scored by what they do when decoded, so PPO learns about every token at once.

Runs on a tiny tokenizer trained from the bundled sample motion (no ../shared needed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_tokenizer import train_tiny_tokenizer

from motion_vqvae import Tokenizer
from motion_vqvae.data import sample_motion_path
from motion_vqvae.envs import decoders, load_token_source
from motion_vqvae.envs.g1 import G1Body
from motion_vqvae.envs.policy_training import PolicyConfig, train_policy
from motion_vqvae.envs.token_policy import EffectHead, standardized, token_effects


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_tokenizer(
        tmp_path_factory.mktemp("rvq"),
        str(sample_motion_path()),
        6,
        quantizer="rvq",
        num_quantizers=2,
        body_parts="upper_lower",
    )


def test_effects_are_each_codes_decoded_motion_held_alone_and_per_part(checkpoint: Path) -> None:
    tok = Tokenizer.load(checkpoint)
    effects = token_effects(tok, levels=1, repeats=2, pairings=3)
    parts, nb_code = len(tok.spec.parts), tok.spec.nb_code
    root_dim = max(cols.stop for cols in effects.columns.values())
    assert effects.held.shape == (nb_code, root_dim + 29)
    assert effects.per_part.shape == (parts, nb_code, root_dim + 29)
    assert np.isfinite(effects.per_part).all()
    # held[c]: code c in every stream of every part, the last held token's frames averaged.
    source = load_token_source(tok, levels=1)
    source.reset(G1Body().stand_pose())
    for _ in range(2):
        root, joints = source.step(np.full(tok.spec.num_streams, 3))
    np.testing.assert_allclose(effects.held[3], np.concatenate([root.mean(0), joints.mean(0)]), atol=1e-5)
    # per_part averages three pairings; the first is held, the others differ, so per_part is not held.
    assert np.abs(effects.per_part - effects.held[None]).max() > 1e-4
    z = standardized(effects.per_part)
    moving = np.ptp(effects.per_part, axis=1) > 1e-9
    np.testing.assert_allclose(z.std(axis=1)[moving], 1.0, rtol=1e-6)
    np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-9)


def test_held_tokens_decode_in_batches_as_the_export_decodes_them_one_by_one(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint decodes held tokens as batches of rows (three here: 7 rows make three batches); the
    robot runtime's export one row after the other. Both must describe a token alike."""
    tok = Tokenizer.load(checkpoint)
    monkeypatch.setattr(decoders, "HELD_BATCH", 3)
    tokens = np.random.default_rng(0).integers(0, tok.spec.nb_code, (7, tok.spec.num_streams))
    stand = G1Body().stand_pose()
    root, dof = load_token_source(tok).decode_held(tokens, stand, 2)
    fpt = tok.spec.frames_per_token
    assert root.shape[:2] == (7, fpt) and dof.shape == (7, fpt, 29)
    tok.export(tmp_path / "export")
    root_onnx, dof_onnx = load_token_source(tmp_path / "export").decode_held(tokens, stand, 2)
    np.testing.assert_allclose(root, root_onnx, atol=1e-4)
    np.testing.assert_allclose(dof, dof_onnx, atol=1e-4)
    assert np.abs(dof[0] - dof[1]).max() > 1e-4  # different tokens: rows are not one broadcast row
    for source in (load_token_source(tok), load_token_source(tmp_path / "export")):
        with pytest.raises(ValueError, match="repeats must be an int >= 1"):
            source.decode_held(tokens, stand, 0)


def test_logits_are_linear_in_the_effect_features_and_start_near_uniform() -> None:
    torch.manual_seed(0)
    effects = torch.randn(2, 7, 3)
    head = EffectHead(5, effects)
    latent = torch.randn(4, 5)
    logits = head(latent).view(4, 2, 7)
    coefficients = head.coefficients(latent).view(4, 2, 6)
    features = torch.cat([effects, effects**2], dim=-1)
    torch.testing.assert_close(logits[1, 0, 4], coefficients[1, 0] @ features[0, 4])
    torch.testing.assert_close(logits[2, 1, 6], coefficients[2, 1] @ features[1, 6])
    assert (logits.softmax(-1) - 1 / 7).abs().max() < 0.01


def test_what_is_learned_about_one_token_carries_to_a_token_that_does_the_same() -> None:
    torch.manual_seed(0)
    effects = torch.randn(1, 6, 3)
    effects[0, 5] = effects[0, 2]  # token 5 does what token 2 does
    head = EffectHead(4, effects)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    latent = torch.randn(16, 4)
    for _ in range(200):  # reinforce token 2 only
        loss = torch.nn.functional.cross_entropy(head(latent), torch.full((16,), 2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probs = head(latent).softmax(-1).mean(0)
    assert probs[2] > 0.4 and probs[5] > 0.4, probs  # never reinforced, token 5 rose with token 2
    torch.testing.assert_close(probs[2], probs[5])


@pytest.mark.parametrize("head", ["effect", "categorical"])
def test_train_policy_uses_the_chosen_head(checkpoint: Path, tmp_path: Path, head: str) -> None:
    cfg = PolicyConfig(
        timesteps=128, num_envs=2, n_steps=64, batch_size=64, n_epochs=1, eval_episodes=1, action_head=head
    )
    results = train_policy(checkpoint, tmp_path, cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["action_head"] == head
    assert results["mean_return"] > 0
    from stable_baselines3 import PPO

    policy = PPO.load(tmp_path / "ppo_policy.zip", device="cpu").policy
    assert isinstance(policy.action_net, EffectHead) == (head == "effect")


def test_unknown_head_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="action_head 'wolpertinger'"):
        train_policy(checkpoint, tmp_path, PolicyConfig(timesteps=64, action_head="wolpertinger"))
