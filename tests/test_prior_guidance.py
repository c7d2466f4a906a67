"""Prior-guided token RL: the wrapper's log-probabilities equal the prior's scoring, the bonus and the
top-p constraint act as documented, on the tiny tokenizer and a tiny prior."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_prior import train_tiny_prior  # noqa: E402

from motion_vqvae.data import sample_motion_path  # noqa: E402
from motion_vqvae.envs.policy_training import make_env, task_kwargs  # noqa: E402
from motion_vqvae.envs.prior_guidance import PriorGuidance, episode_stats, guide  # noqa: E402
from motion_vqvae.prior.sampling import LoadedPrior  # noqa: E402
from motion_vqvae.prior.scoring import prior_bits  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from _tiny_tokenizer import train_tiny_tokenizer

    root = tmp_path_factory.mktemp("guided")
    tokenizer = train_tiny_tokenizer(root / "tok", str(sample_motion_path()), 30)
    return tokenizer, train_tiny_prior(tokenizer, root / "prior", 10)


def _task(nb_code: int) -> dict:
    rng = np.random.default_rng(0)
    return task_kwargs(rng.normal(0, 0.2, size=(nb_code, 3)))


@pytest.mark.parametrize("mode", ["bonus", "constrain"])
def test_guided_env_scores_tokens_as_the_prior_does(models: tuple[Path, Path], mode: str) -> None:
    tokenizer, prior_path = models
    guidance = PriorGuidance(prior_path, mode, beta=0.5, top_p=0.5)
    env = guide(make_env(tokenizer, _task(32)), guidance)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    tokens, logps = [], []
    for _ in range(20):  # longer than the context: the wrapper re-primes its cache on the recent tokens
        mask = env.get_wrapper_attr("action_masks")()
        allowed = np.flatnonzero(mask)
        if mode == "constrain":
            assert 0 < len(allowed) < 32  # a top-0.5 set, not the whole vocabulary
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
    from _tiny_tokenizer import train_tiny_tokenizer

    other = train_tiny_tokenizer(tmp_path / "tok", str(sample_motion_path()), 3, nb_code=16)
    with pytest.raises(ValueError, match="train the prior on this tokenizer"):
        guide(make_env(other, _task(16)), PriorGuidance(models[1], "bonus"))
    with pytest.raises(ValueError, match="prior mode"):
        PriorGuidance(models[1], "kl")
