"""Prior-guided token RL on tiny tokenizers and priors from the bundled sample: the wrapper's
log-probabilities equal the prior's scoring, the bonus and the top-p constraint act as documented, and on
the default token structure (levels x body parts) the policy chooses the coarse level, the prior fills the
rest, and the mask covers exactly the chosen streams at every ``--levels``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _tiny_tokenizer import NB_CODE, train_tiny_tokenizer  # noqa: E402
from test_prior import train_tiny_prior  # noqa: E402

from motion_vqvae.data import sample_motion_path  # noqa: E402
from motion_vqvae.envs.policy_training import PolicyConfig, make_env, task_kwargs, train_policy  # noqa: E402
from motion_vqvae.envs.prior_guidance import BigramMask, PriorGuidance, episode_stats  # noqa: E402
from motion_vqvae.prior.sampling import LoadedPrior  # noqa: E402
from motion_vqvae.prior.scoring import bigram_probs, prior_bits  # noqa: E402
from sim2real.prior import top_p_mask  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("guided")
    tokenizer = train_tiny_tokenizer(root / "tok", str(sample_motion_path()), 30)
    return tokenizer, train_tiny_prior(tokenizer, root / "prior", 10)


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The default's token structure, tiny: 2 RVQ levels x 2 body parts (streams upper/L0, upper/L1,
    lower/L0, lower/L1), and a prior on its tokens."""
    root = tmp_path_factory.mktemp("multi")
    default_like = {"quantizer": "rvq", "num_quantizers": 2, "body_parts": "upper_lower"}
    tokenizer = train_tiny_tokenizer(root / "tok", str(sample_motion_path()), 6, **default_like)
    return tokenizer, train_tiny_prior(tokenizer, root / "prior", 6, speed_augment="[]")


def _task(nb_code: int) -> dict:
    rng = np.random.default_rng(0)
    return task_kwargs(rng.normal(0, 0.2, size=(nb_code, 3)))


@pytest.mark.parametrize("mode", ["bonus", "constrain"])
def test_guided_env_scores_tokens_as_the_prior_does(models: tuple[Path, Path], mode: str) -> None:
    tokenizer, prior_path = models
    guidance = PriorGuidance(prior_path, mode, beta=0.5, top_p=0.5)
    env = make_env(tokenizer, _task(NB_CODE), guidance=guidance)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    tokens, logps = [], []
    for _ in range(20):  # longer than the context: the wrapper re-primes its cache on the recent tokens
        mask = env.get_wrapper_attr("action_masks")()
        allowed = np.flatnonzero(mask)
        if mode == "constrain":
            assert 0 < len(allowed) < NB_CODE  # a top-0.5 set, not the whole vocabulary
        else:
            assert len(allowed) == NB_CODE  # the sets only bind under the constraint
        token = int(rng.choice(allowed))
        _, reward, _, _, info = env.step(token)
        bonus = reward - info["task_reward"]
        assert np.isclose(bonus, 0.5 * info["prior_logp"] if mode == "bonus" else 0.0)
        tokens.append(token)
        logps.append(info["prior_logp"])
    prior = LoadedPrior.load(prior_path)
    window = prior.model.block_size - 1
    expected = -prior_bits(prior.model, np.array(tokens[:window])[:, None]) * np.log(2.0)
    assert np.allclose(logps[:window], expected, atol=1e-4)
    stats = episode_stats(env.get_wrapper_attr("episode_log"), 30.0, 29)
    assert np.isclose(stats["prior_nll_bits_per_token"], -np.mean(logps) / np.log(2.0))
    assert np.isfinite(stats["jerk_rad_s3"]) and stats["jerk_rad_s3"] > 0


def test_guidance_refuses_a_prior_of_another_vocabulary(models: tuple[Path, Path], tmp_path: Path) -> None:
    other = train_tiny_tokenizer(tmp_path / "tok", str(sample_motion_path()), 3, nb_code=16)
    with pytest.raises(ValueError, match="train the prior on this tokenizer"):
        make_env(other, _task(16), guidance=PriorGuidance(models[1], "bonus"))
    with pytest.raises(ValueError, match="prior mode"):
        PriorGuidance(models[1], "kl")
    with pytest.raises(ValueError, match="mask model"):
        PriorGuidance(models[1], "constrain", mask_model="trigram")


def test_without_a_prior_the_policy_acts_on_the_coarse_level_and_only_that_is_decoded(
    multi: tuple[Path, Path],
) -> None:
    env = make_env(multi[0], _task(NB_CODE))
    assert env.action_space == gym.spaces.MultiDiscrete([NB_CODE, NB_CODE])  # one token per body part
    assert env.get_wrapper_attr("levels") == 1
    assert list(env.get_wrapper_attr("action_streams")) == [0, 2]  # upper/L0, lower/L0
    env.reset(seed=0)
    assert env.step(np.array([3, 5]))[4]["token"].tolist() == [3, 0, 5, 0]  # level 1 is not decoded
    with pytest.raises(ValueError, match="need fill="):
        make_env(multi[0], _task(NB_CODE), levels=2)


@pytest.mark.parametrize("levels", [1, 2])
def test_coarse_policy_with_a_prior_masks_its_streams_and_the_prior_fills_the_rest(
    multi: tuple[Path, Path], levels: int
) -> None:
    tokenizer, prior_path = multi
    guidance = PriorGuidance(prior_path, "constrain", top_p=0.5)
    env = make_env(tokenizer, _task(NB_CODE), levels=levels, guidance=guidance)
    assert env.action_space == gym.spaces.MultiDiscrete([NB_CODE, NB_CODE])
    assert env.get_wrapper_attr("levels") == levels
    prior = LoadedPrior.load(prior_path)
    model = prior.model
    env.reset(seed=0)
    rng = np.random.default_rng(2)
    tuples, logps = [], []
    with torch.no_grad():
        hidden, cache = model.start(None, None, 1)
    for t in range(8):
        mask = env.get_wrapper_attr("action_masks")()
        assert mask.shape == (2 * NB_CODE,)  # one set per chosen stream, as MaskablePPO needs
        sets = mask.reshape(2, NB_CODE)
        assert all(0 < row.sum() < NB_CODE for row in sets)
        action = np.array([rng.choice(np.flatnonzero(row)) for row in sets])
        _, _, _, _, info = env.step(action)
        token = info["token"]
        # The chosen streams are the action; the others the prior's most likely code given the earlier ones.
        assert token[[0, 2]].tolist() == action.tolist()
        with torch.no_grad():
            for s in (1, 3):
                logits = model.head(hidden, torch.as_tensor(token)[None])[0, s]
                assert token[s] == int(logits.argmax())
            hidden, cache = model.step(torch.as_tensor(token)[None, None], torch.tensor([t + 1]), cache)
            hidden = hidden[:, -1]
        tuples.append(token)
        logps.append(info["prior_logp"])
    # The prior's history is the whole tuples (fill included), scored as evaluate_prior scores a step.
    expected = -prior_bits(model, np.array(tuples)) * np.log(2.0)
    assert np.allclose(logps, expected, atol=1e-4)


def test_complete_step_is_the_stream_by_stream_greedy_fill() -> None:
    """Against the plain loop (one head run per stream), for random chosen streams and a cut-off."""
    from motion_vqvae.prior.model import TokenGPT
    from motion_vqvae.prior.sampling import TorchPriorBackend, complete_step

    torch.manual_seed(0)
    hp = {"nb_code": 7, "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 6, "dropout": 0.0}
    backend = TorchPriorBackend(TokenGPT(num_streams=6, text_dim=0, **hp))
    hidden, cache = backend.start(np.zeros((1, 1), np.float32), np.zeros(1, np.float32))
    hidden = backend.step(np.array([[[1, 2, 3, 4, 5, 6]]]), np.array([1]), cache)[0][:, -1]
    rng = np.random.default_rng(1)
    for _ in range(6):
        chosen, forced = rng.random(6) < 0.4, rng.integers(0, 7, 6)
        plain = np.where(chosen, forced, 0)
        for s in range(6):
            if not chosen[s]:
                plain[s] = int(np.argmax(backend.head(hidden, plain[None])[0, s]))
        token, logits = complete_step(backend, hidden, forced, chosen)
        assert token.tolist() == plain.tolist()
        np.testing.assert_allclose(logits, backend.head(hidden, plain[None])[0], atol=1e-6)
        upto = int(rng.integers(1, 7))
        cut = complete_step(backend, hidden, forced, chosen, upto=upto)
        assert cut[0][:upto].tolist() == plain[:upto].tolist()
        np.testing.assert_allclose(cut[1][:upto], logits[:upto], atol=1e-6)


def test_bigram_mask_is_each_chosen_streams_top_p_given_its_previous_id(multi: tuple[Path, Path]) -> None:
    tokenizer, prior_path = multi
    guidance = PriorGuidance(prior_path, "constrain", top_p=0.5, mask_model="bigram")
    env = make_env(tokenizer, _task(NB_CODE), guidance=guidance)
    env.reset(seed=0)
    first = env.get_wrapper_attr("allowed_sets")()
    info = env.step(np.flatnonzero(first[0])[:1].tolist() + np.flatnonzero(first[1])[:1].tolist())[4]
    state = LoadedPrior.load(prior_path).state
    probs = bigram_probs(state["bigram"].numpy())
    expected = np.stack([top_p_mask(np.log(probs[s, info["token"][s]]), 0.5) for s in (0, 2)])
    assert np.array_equal(env.get_wrapper_attr("allowed_sets")(), expected)
    control = BigramMask(state["unigram"].numpy(), probs, np.array([0, 2]), 0.5)
    assert np.array_equal(control(np.zeros((0, 4), np.int64)), first)


def test_train_policy_reports_masked_unmasked_and_random_in_mask_returns(
    multi: tuple[Path, Path], tmp_path: Path
) -> None:
    tokenizer, prior_path = multi
    cfg = PolicyConfig(
        timesteps=64,
        num_envs=1,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        eval_episodes=1,
        seed=3,
        levels=1,
        prior=PriorGuidance(prior_path, "constrain", top_p=0.5),
    )
    results = train_policy(tokenizer, tmp_path, cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["seeds"] == {"train": 3, "evaluation": [10_003]}
    assert saved["mean_return"] == saved["masked_mean_return"] == results["mean_return"]
    for key in ("unmasked_mean_return", "random_in_mask_mean_return", "random_token_mean_return"):
        assert 0 < saved[key] <= 300, key
    assert 0 < saved["allowed_set_size_mean"] < NB_CODE
    assert saved["prior_nll_bits_per_token"] > 0 and saved["random_in_mask_prior_nll_bits_per_token"] > 0


def test_prior_benchmark_runs_every_arm_on_every_seed_and_judges_the_bars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The benchmark's bookkeeping, on stand-in runs (a real run is minutes per arm and seed)."""
    import motion_vqvae.envs.policy_training as policy_training
    from benchmarks.prior import PPO_ARMS, guided_ppo

    calls = []

    def fake_train(tokenizer: Path, out: Path, cfg: PolicyConfig) -> dict:
        calls.append((out.relative_to(tmp_path).as_posix(), cfg.seed, cfg.prior and cfg.prior.mask_model))
        masked = cfg.prior is not None
        return {
            "mean_return": 40.0 + cfg.seed,
            "random_token_mean_return": 10.0,
            "random_in_mask_mean_return": 35.0 if masked else None,
        }

    monkeypatch.setattr(policy_training, "train_policy", fake_train)
    rows = guided_ppo(tmp_path / "tok.pt", tmp_path / "prior.pt", tmp_path, 0.1, seeds=(0, 1, 2))
    assert len(calls) == 3 * len(PPO_ARMS) and ("constrain_bigram/seed_2", 2, "bigram") in calls
    assert rows["no_prior"]["mean_return"] == 41.0 and rows["no_prior"]["ratio_vs_random_in_mask"] is None
    assert rows["bars"]["no_prior"] == {"vs_random": True, "vs_random_in_mask": None}
    assert rows["bars"]["constrain"] == {"vs_random": True, "vs_random_in_mask": False}  # 41 / 35 < 1.3
