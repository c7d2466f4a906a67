"""Residual VQ, FSQ and body-part token structure: shapes, level truncation, dropout, state, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motion_vqvae.models.multilevel import FSQ, ResidualVQ
from motion_vqvae.models.vqvae import VQVAE
from sim2real.token_spec import TokenSpec

SMALL = dict(width=24, depth=1, code_dim=8, nb_code=16, causal=True, fps=30.0)
PARTS = {"upper": [0, 2, 4, 6, 8, 10], "lower": [1, 3, 5, 7, 9, 11]}
VARIANTS = {
    "rvq": dict(quantizer="rvq", num_quantizers=3, quantize_dropout=0.5),
    "fsq": dict(quantizer="fsq", fsq_levels=[4, 3, 3]),
    "parts_rvq": dict(quantizer="rvq", num_quantizers=2, parts=PARTS),
    "parts_vq": dict(quantizer="ema_reset", parts=PARTS),
}


def _latents(b: int = 4, d: int = 8, t: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, d, t, generator=torch.Generator().manual_seed(seed))  # (B, D, T')


def _model(name: str) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(12, **{**SMALL, **VARIANTS[name]})


def test_rvq_levels_quantize_the_residual_and_truncate_to_partial_sums() -> None:
    torch.manual_seed(0)
    q = ResidualVQ(nb_code=16, code_dim=8, num_levels=3)
    for _ in range(5):
        q(_latents())
    q.eval()
    z = _latents(seed=1)
    out = q(z)
    assert out.indices.shape == (4, 16, 3) and out.perplexity.shape == (3,) and out.usage.shape == (3,)
    assert torch.equal(q.lookup(z), out.indices)
    torch.testing.assert_close(q.dequantize(out.indices), out.quantized)
    parts = [q.levels[k].dequantize(out.indices[..., k]) for k in range(3)]
    torch.testing.assert_close(q.dequantize_levels(out.indices, 1), parts[0])
    torch.testing.assert_close(q.dequantize_levels(out.indices, 2), parts[0] + parts[1])
    errors = [float((q.dequantize_levels(out.indices, k) - z).pow(2).mean()) for k in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2], "each level must refine the previous ones"
    assert q.codebook.shape == (3, 16, 8)
    with pytest.raises(ValueError, match=r"levels must be in \[1, 3\]"):
        q.dequantize_levels(out.indices, 4)


def test_quantize_dropout_keeps_a_prefix_of_levels_per_window() -> None:
    torch.manual_seed(0)
    q = ResidualVQ(nb_code=16, code_dim=8, num_levels=4, quantize_dropout=1.0)
    mask = q._kept_levels(64, 5, torch.device("cpu")).view(64, 5, 4)
    assert torch.equal(mask, mask[:, :1].expand_as(mask)), "one choice per window"
    kept = mask[:, 0].sum(-1)
    assert kept.min() >= 1 and set(kept.tolist()) == {1.0, 2.0, 3.0, 4.0}
    assert torch.equal(mask[:, 0], (torch.arange(4)[None] < kept[:, None]).float()), "a prefix of levels"
    q.eval()
    assert bool((q._kept_levels(8, 5, torch.device("cpu")) == 1).all()), "never in eval"


def test_fsq_indices_are_mixed_radix_digits_and_decode_exactly() -> None:
    torch.manual_seed(0)
    q = FSQ(code_dim=8, fsq_levels=[4, 3, 5])
    z = _latents() * 3
    out = q(z)
    spec = TokenSpec("fsq", 1, 60, (4, 3, 5), ("body",), 4, 30.0)
    assert out.indices.shape == (4, 16) and int(out.indices.max()) < 60 and out.loss.item() == 0.0
    digits = spec.fsq_digits(out.indices.numpy())
    _, mine = q._digits(z)
    assert (digits == mine.numpy()).all()
    torch.testing.assert_close(q.dequantize(out.indices), out.quantized)
    assert torch.equal(q.lookup(z), out.indices)
    assert q.codebook.shape == (60, 8)
    z.requires_grad_(True)
    q(z).quantized.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0, "straight-through rounding passes gradients"
    with pytest.raises(ValueError, match="fsq_levels"):
        FSQ(code_dim=8, fsq_levels=[4, 1])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_model_token_shapes_follow_the_token_spec(name: str) -> None:
    model = _model(name)
    spec = model.token_spec
    for seed in range(3):  # a few training batches: finer codebooks get re-seeded from real residuals
        x = torch.randn(2, 32, 12, generator=torch.Generator().manual_seed(seed))
        recon, q = model(x)
    assert recon.shape == x.shape and q.usage.shape == (spec.num_streams,)
    model.eval()
    tokens = model.encode(torch.randn(2, 32, 12))  # not the codebooks' seed batch: finer levels are busy
    assert tokens.shape == ((2, 8) if spec.is_single else (2, 8, spec.num_streams))
    assert model.decode(tokens).shape == x.shape
    assert TokenSpec.from_dict(spec.to_dict()) == spec
    if spec.num_levels > 1:
        coarse = model.decode(tokens, levels=1)
        assert not torch.allclose(coarse, model.decode(tokens))
        zeroed = tokens.clone()
        zeroed[..., 1 : spec.num_levels] = 0  # part 0's finer levels: ignored at levels=1
        torch.testing.assert_close(
            model.decode(zeroed, levels=1)[..., PARTS["upper"]], coarse[..., PARTS["upper"]]
        )
    with pytest.raises(ValueError, match="shape"):
        model.decode(tokens[..., 0] if not spec.is_single else tokens[..., None].repeat(1, 1, 2))


def test_invalid_combinations_name_the_fix() -> None:
    with pytest.raises(ValueError, match="quantizer: rvq"):
        VQVAE(12, **{**SMALL, "num_quantizers": 2})
    with pytest.raises(ValueError, match="l2_normalize"):
        VQVAE(12, **{**SMALL, "quantizer": "rvq", "l2_normalize": True})
    with pytest.raises(ValueError, match="quantize_dropout"):
        ResidualVQ(nb_code=8, code_dim=4, num_levels=2, quantize_dropout=1.5)


def test_default_is_body_part_rvq_and_one_stream_is_two_sets_away(caplog) -> None:
    from motion_vqvae.agent import model_hparams
    from motion_vqvae.config_loader import ConfigLoader
    from motion_vqvae.features import FeatureLayout

    layout = FeatureLayout(num_dof=29)
    layout.fit_normalizer([np.zeros((2, layout.dim))])  # the bounded joint head reads the normalizer

    def spec(*overrides: str):
        return VQVAE(**model_hparams(ConfigLoader(overrides=list(overrides)).config, layout, 30.0)).token_spec

    default = spec()
    assert default.kind == "rvq" and default.num_levels > 1 and default.fps == 30.0
    assert default.parts == ("upper", "lower"), "the default tokenizer has a stream set per body part"
    parts = model_hparams(ConfigLoader().config, layout, 30.0)["parts"]
    assert sorted(c for cols in parts.values() for c in cols) == list(range(layout.dim))
    assert layout.slices["root_height"].start in parts["lower"]
    assert spec("body_parts=null").parts == ("body",)
    one = spec("quantizer=ema_reset", "body_parts=null")
    assert one.is_single and one.kind == "vq"
    caplog.clear()
    per_part = spec("quantizer=ema_reset")
    assert per_part.num_streams == 2 and per_part.num_levels == 1
    assert "body_parts=null" in caplog.text, "a one-level quantizer on body parts says how to get one stream"
