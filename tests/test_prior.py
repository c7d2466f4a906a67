"""The motion-token prior: model causality, KV cache, n-gram baselines, config (training:
test_prior_training.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_prior  # noqa: E402
from _tiny_tokenizer import set_args  # noqa: E402

from motion_vqvae.data import sample_motion_path  # noqa: E402
from motion_vqvae.prior.model import TokenGPT  # noqa: E402
from motion_vqvae.prior.scoring import (  # noqa: E402
    base_log_probs,
    bigram_bits,
    bigram_stream_bits,
    ngram_counts,
    prior_stream_bits,
    unigram_bits,
)

TINY_PRIOR = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 12,
    "batch_size": 8,
    "warmup_iter": 2,
    "use_text": False,
    "num_threads": 1,
    "eval_every": 5,
    "save_every": 5,
}


def prior_sets(iters: int, **extra: object) -> list[str]:
    return set_args({**TINY_PRIOR, "total_iter": iters, **extra})


def prior_args(tokenizer: Path, out: Path) -> list[str]:
    """train_prior.py's required arguments for a prior on the bundled sample's tokens."""
    return ["--tokenizer", str(tokenizer), "--motion_file", str(sample_motion_path()), "--out", str(out)]


def train_tiny_prior(tokenizer: Path, out: Path, iters: int, *extra: str, **sets: object) -> Path:
    """A tiny prior (``--set`` overrides as keywords, other flags in ``extra``); returns its last.pt."""
    assert train_prior.main([*prior_args(tokenizer, out), *prior_sets(iters, **sets), *extra]) == 0
    return out / "checkpoints" / "last.pt"


def _model(streams: int, text_dim: int = 0) -> TokenGPT:
    """A small TokenGPT whose correction and base are random (a fresh one's correction is zero)."""
    torch.manual_seed(0)
    model = TokenGPT(
        nb_code=7,
        num_streams=streams,
        n_layer=2,
        n_head=2,
        n_embd=16,
        block_size=10,
        dropout=0.0,
        text_dim=text_dim,
    ).eval()
    torch.nn.init.normal_(model.lm_head.weight, std=0.5)
    model.set_base(torch.log_softmax(torch.randn(streams, 8, 7), dim=-1))
    return model


def test_a_fresh_prior_predicts_exactly_its_bigram_base() -> None:
    """The head corrects the smoothed bigram from zero: before training, the prior is the bigram."""
    rng = np.random.default_rng(0)
    sequences = [rng.integers(7, size=(40, 3)) for _ in range(4)]
    uni, bi = ngram_counts(sequences, 7)
    model = _model(3)
    torch.nn.init.zeros_(model.lm_head.weight)  # as constructed
    model.set_base(torch.as_tensor(base_log_probs(uni, bi), dtype=torch.float32))
    held_out = rng.integers(7, size=(25, 3))
    np.testing.assert_allclose(
        prior_stream_bits(model, held_out), bigram_stream_bits(held_out, uni, bi), atol=1e-4
    )
    with pytest.raises(ValueError, match="finite"):
        model.set_base(torch.full((3, 8, 7), float("-inf")))


@pytest.mark.parametrize("streams", [1, 3])
def test_model_is_causal_over_steps_and_streams(streams: int) -> None:
    model = _model(streams)
    tokens = torch.randint(7, (2, 8, streams))
    base = model(tokens)
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 7
    # Steps before 5 never see step 5 or later.
    assert torch.allclose(model(changed)[:, :5], base[:, :5], atol=1e-6)
    assert not torch.allclose(model(changed)[:, 6:], base[:, 6:], atol=1e-4)
    for s in range(streams):
        later = tokens.clone()
        later[..., s:] = (later[..., s:] + 3) % 7
        # Stream s's prediction of a step depends on that step's coarser streams only.
        out = model(later)
        assert torch.allclose(out[:, 0, s], base[:, 0, s], atol=1e-6)


@pytest.mark.parametrize("streams", [1, 2])
def test_kv_cache_steps_equal_whole_window(streams: int) -> None:
    model = _model(streams, text_dim=5)
    tokens = torch.randint(7, (2, 6, streams))
    text, has = torch.randn(2, 5), torch.tensor([1.0, 0.0])
    whole = model(tokens, text, has)  # (B, T, S, V)
    hidden, cache = model.start(text, has, 2)
    steps = [model.head(hidden, tokens[:, 0])]
    # First two tokens in one call, then one at a time: chunked and single steps extend the same cache.
    h, cache = model.step(tokens[:, :2], torch.tensor([1, 2]), cache)
    steps += [model.head(h[:, i], tokens[:, i + 1]) for i in range(2)]
    for t in range(2, 5):
        h, cache = model.step(tokens[:, t : t + 1], torch.tensor([t + 1]), cache)
        steps.append(model.head(h[:, -1], tokens[:, t + 1]))
    assert torch.allclose(torch.stack(steps, dim=1), whole, atol=1e-5)


def test_ngram_baselines_by_hand() -> None:
    train = [np.array([[0], [1], [0], [1]])]
    uni, bi = ngram_counts(train, 3)
    seq = np.array([[0], [1], [2]])
    # Add-one: p(0) = 3/7; p(1|0) = 3/5; p(2|1) = 1/4.
    assert np.allclose(unigram_bits(seq[:1], uni), -np.log2(3 / 7))
    assert np.allclose(bigram_bits(seq, uni, bi), [-np.log2(3 / 7), -np.log2(3 / 5), -np.log2(1 / 4)])


def test_prior_config_is_typed_and_rejects_unknown_keys() -> None:
    from motion_vqvae.prior.config import load_prior_config

    cfg = load_prior_config(None, ["lr=2e-4", "speed_augment=[0.9]"])
    assert cfg.lr == 2e-4 and isinstance(cfg.lr, float) and cfg.speed_augment == [0.9]
    with pytest.raises(KeyError, match="did you mean 'n_layer'"):
        load_prior_config(None, ["n_lyer=3"])
    with pytest.raises(ValueError, match="multiple of n_head"):
        load_prior_config(None, ["n_embd=130"])
