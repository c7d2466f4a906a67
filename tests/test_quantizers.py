"""Quantizers: interface, training updates, dead-code reset, state round-trip, eval purity, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from motion_vqvae.models import QUANTIZERS, Quantizer, VectorQuantizer, build_quantizer

NAMES = ["orig", "ema", "reset", "ema_reset"]


def _latents(b: int = 4, d: int = 8, t: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, d, t, generator=torch.Generator().manual_seed(seed))  # (B, D, T')


def _is_row_of(rows: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """For each row of ``rows`` (R, D): does it equal some row of ``pool`` (N, D)?"""
    return (rows[:, None, :] == pool[None, :, :]).all(dim=-1).any(dim=1)


def test_registry_has_the_four_variants_and_names_them_on_error() -> None:
    assert set(NAMES) <= set(QUANTIZERS)
    with pytest.raises(ValueError, match="Unknown quantizer 'vq2'.*ema_reset"):
        build_quantizer("vq2", nb_code=8, code_dim=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nb_code=0, code_dim=4), "nb_code"),
        (dict(nb_code=8, code_dim=2.5), "code_dim"),
        (dict(nb_code=8, code_dim=4, mu=1.0), "mu"),
        (dict(nb_code=8, code_dim=4, reset_threshold=-1.0), "reset_threshold"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_quantizer("ema_reset", **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes_and_stats(name: str) -> None:
    q = build_quantizer(name, nb_code=16, code_dim=8)
    assert isinstance(q, Quantizer) and q.nb_code == 16 and q.code_dim == 8
    out = q(_latents())
    assert out.quantized.shape == (4, 8, 16)
    assert out.indices.shape == (4, 16) and out.indices.dtype == torch.int64
    assert out.loss.dim() == 0 and out.loss.item() > 0
    assert 1.0 <= out.perplexity.item() <= 16.0
    assert 0.0 < out.usage.item() <= 1.0
    assert q.codebook.shape == (16, 8) and not q.codebook.requires_grad
    with pytest.raises(ValueError, match=r"\(B, 8, T'\)"):
        q(torch.randn(4, 7, 16))


def test_batch_stats_perplexity_and_usage() -> None:
    q = build_quantizer("ema", nb_code=8, code_dim=2)
    ppl, usage = q.batch_stats(torch.arange(8).repeat(3).view(2, 12))
    assert ppl.item() == pytest.approx(8.0) and usage.item() == 1.0
    ppl, usage = q.batch_stats(torch.full((2, 5), 3))
    assert ppl.item() == pytest.approx(1.0) and usage.item() == pytest.approx(1 / 8)


@pytest.mark.parametrize("name", NAMES)
def test_first_training_batch_initialises_codebook_from_encodings(name: str) -> None:
    torch.manual_seed(0)
    q = build_quantizer(name, nb_code=16, code_dim=8, mu=0.0)  # mu=0: EMA means are this batch's means
    z = _latents() * 5 + 3
    q(z)
    assert bool(q.initialised)
    flat = z.permute(0, 2, 1).reshape(-1, 8)
    if name == "orig":  # no update besides the initialisation: codes are exact encodings
        assert _is_row_of(q.codebook, flat).all()
    # Every code now lies within the data, far from the N(0, 1) placeholder it started as.
    assert (q.codebook.mean() - flat.mean()).abs() < 1.0


def test_init_with_fewer_encodings_than_codes() -> None:
    q = build_quantizer("ema_reset", nb_code=64, code_dim=4)
    out = q(_latents(b=1, d=4, t=8))
    assert out.quantized.shape == (1, 4, 8) and torch.isfinite(q.codebook).all()


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_a_pure_lookup(name: str) -> None:
    q = build_quantizer(name, nb_code=16, code_dim=8)
    q(_latents(seed=1))  # initialise in training mode
    q.eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    out = q(_latents(seed=2))
    for key, value in q.state_dict().items():
        assert torch.equal(value, before[key]), key
    # dequantize(indices) reproduces the forward value exactly.
    assert torch.equal(q.dequantize(out.indices), out.quantized)


@pytest.mark.parametrize("name", NAMES)
def test_lookup_matches_forward_and_never_updates(name: str) -> None:
    q = build_quantizer(name, nb_code=16, code_dim=8)
    q(_latents(seed=1))
    before = {k: v.clone() for k, v in q.state_dict().items()}
    indices = q.lookup(_latents(seed=2))  # training mode on purpose
    for key, value in q.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(indices, q.eval()(_latents(seed=2)).indices)


def test_eval_before_training_does_not_initialise() -> None:
    q = build_quantizer("ema_reset", nb_code=16, code_dim=8).eval()
    q(_latents())
    assert not bool(q.initialised)


@pytest.mark.parametrize("name", ["reset", "ema_reset"])
def test_dead_codes_are_reseeded_from_current_encodings(name: str) -> None:
    torch.manual_seed(0)
    q = build_quantizer(name, nb_code=16, code_dim=8)
    q(_latents(seed=1))
    with torch.no_grad():  # make codes 0..3 unreachable and unused
        q.embed[:4] = 1e3
        q.ema_count[:4] = 0.0
        if name == "ema_reset":
            q.ema_sum[:4] = 0.0
    z = _latents(seed=2)
    q(z)
    flat = z.permute(0, 2, 1).reshape(-1, 8)
    assert _is_row_of(q.codebook[:4], flat).all()
    assert (q.ema_count[:4] >= q.reset_threshold).all()


def test_ema_without_reset_keeps_dead_codes() -> None:
    q = build_quantizer("ema", nb_code=16, code_dim=8)
    q(_latents(seed=1))
    with torch.no_grad():
        q.embed[:4] = 1e3
        q.ema_sum[:4] = 1e3 * q.ema_count[:4, None]
    q(_latents(seed=2))
    assert torch.allclose(q.codebook[:4], torch.full((4, 8), 1e3))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_resumes_exactly(name: str) -> None:
    torch.manual_seed(0)
    q = build_quantizer(name, nb_code=16, code_dim=8)
    for seed in range(3):
        q(_latents(seed=seed))
    state = q.state_dict()
    assert {"ema_count", "initialised", "embed"} <= set(state)
    assert ("ema_sum" in state) == name.startswith("ema")
    fresh = build_quantizer(name, nb_code=16, code_dim=8)
    fresh.load_state_dict(state)
    assert bool(fresh.initialised)
    # Continue both from the same RNG state: identical codebooks, indices and statistics.
    rng = torch.get_rng_state()
    out_a = q(_latents(seed=7))
    torch.set_rng_state(rng)
    out_b = fresh(_latents(seed=7))
    assert torch.equal(out_a.indices, out_b.indices)
    for key, value in q.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_each_quantizer_learns_a_toy_autoencoder(name: str) -> None:
    torch.manual_seed(0)
    centres = torch.randn(8, 12)
    data = centres[torch.randint(8, (512,))] + 0.05 * torch.randn(512, 12)  # 8 clusters
    enc, dec = nn.Linear(12, 4), nn.Linear(4, 12)
    q = build_quantizer(name, nb_code=16, code_dim=4, mu=0.9)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters(), *q.parameters()], lr=2e-2)
    losses = []
    for _ in range(60):
        z = enc(data).view(16, 32, 4).transpose(1, 2)  # (B, D, T')
        out = q(z)
        recon = dec(out.quantized.transpose(1, 2).reshape(512, 4))
        loss = nn.functional.mse_loss(recon, data) + 0.25 * out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # orig (gradient-trained codebook) is the slowest, at about 0.45 of its starting loss.
    assert sum(losses[-5:]) < 0.6 * sum(losses[:5]), losses[::10]


def test_l2_normalised_codes_are_unit_vectors() -> None:
    q = build_quantizer("ema_reset", nb_code=16, code_dim=8, l2_normalize=True)
    out = q(_latents())
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(16), atol=1e-5)
    assert torch.allclose(out.quantized.norm(dim=1), torch.ones(4, 16), atol=1e-5)


def test_quantizer_stays_float32_under_bf16_autocast() -> None:
    q = build_quantizer("ema_reset", nb_code=16, code_dim=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(_latents().bfloat16())
    assert out.quantized.dtype == torch.float32 and q.embed.dtype == torch.float32


def test_dequantize_rejects_bad_indices() -> None:
    q = VectorQuantizer(nb_code=16, code_dim=8, ema=True, reset=True)
    with pytest.raises(ValueError, match=r"\(B, T'\)"):
        q.dequantize(torch.zeros(2, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="integer"):
        q.dequantize(torch.zeros(2, 3))
