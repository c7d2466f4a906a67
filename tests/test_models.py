"""VQVAE wrapper, Conv1d encoder/decoder (shapes, causality, norms) and reconstruction losses."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from motion_vqvae.models import VQVAE, Decoder, Encoder, PaddedConv1d, reconstruction_loss, velocity_loss
from motion_vqvae.models.encdec import ChannelLayerNorm

SMALL = dict(width=32, depth=2, nb_code=32, code_dim=16)


def _model(**overrides: object) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(10, **{"fps": 30.0, **SMALL, **overrides})


def _motion(b: int = 2, t: int = 32, f: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, f, generator=torch.Generator().manual_seed(seed))  # (B, T, F)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("stride_t, down_t", [(2, 2), (3, 2), (2, 1), (2, 0)])
def test_shapes_round_trip(causal: bool, stride_t: int, down_t: int) -> None:
    model = _model(causal=causal, stride_t=stride_t, down_t=down_t)
    fpt = stride_t**down_t
    assert model.frames_per_token == fpt
    x = _motion(t=4 * fpt)
    recon, q = model(x)
    assert recon.shape == x.shape
    assert q.quantized.shape == (2, 16, 4) and q.indices.shape == (2, 4)
    model.eval()
    indices = model.encode(x)
    assert indices.shape == (2, 4) and indices.dtype == torch.int64
    assert torch.equal(indices, model(x)[1].indices)
    assert model.decode(indices).shape == x.shape


def test_encode_never_moves_the_codebook() -> None:
    model = _model()
    model(_motion())  # training forward initialises the codebook
    before = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model.encode(_motion(seed=1))
    assert model.quantizer.training
    for key, value in model.quantizer.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(2, 30, 10), "multiple of frames_per_token=4"),
        (torch.zeros(2, 32, 9), r"\(B, T, 10\)"),
        (torch.zeros(32, 10), r"\(B, T, 10\)"),
    ],
)
def test_bad_input_shapes_raise(x: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _model()(x)


def test_decode_rejects_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match=r"\[0, 31\]"):
        _model().decode(torch.tensor([[0, 32]]))


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(activation="tanh"), ValueError, "relu"),
        (dict(norm="batch"), ValueError, "group"),
        (dict(quantizer="vq"), ValueError, "ema_reset"),
        (dict(norm="group", causal=True), ValueError, "causality"),
        (dict(width=0), ValueError, "width"),
        (dict(depth=2.0), TypeError, "depth"),
    ],
)
def test_invalid_construction_raises(overrides: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _model(**overrides)


def test_hparams_rebuild_the_same_model() -> None:
    model = _model(causal=True, activation="silu", norm="layer", quantizer="ema")
    hparams = json.loads(json.dumps(model.hparams()))  # plain types only
    clone = VQVAE(**hparams)
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    x = _motion()
    assert torch.equal(model(x)[0], clone(x)[0])


@pytest.mark.parametrize("norm, module", [("layer", ChannelLayerNorm), ("group", nn.GroupNorm)])
def test_norms_build_and_change_the_output(norm: str, module: type) -> None:
    plain, normed = _model(), _model(norm=norm)  # same seed: same conv weights
    norms = [m for m in normed.modules() if isinstance(m, module)]
    assert norms and not any(isinstance(m, module) for m in plain.modules())
    if norm == "group":
        assert all(m.num_groups == 32 and m.num_channels == 32 for m in norms)
    else:
        assert all(m.normalized_shape == (32,) for m in norms)
    plain.eval()
    normed.eval()
    x = _motion()
    assert not torch.allclose(plain.encoder(x.transpose(1, 2)), normed.encoder(x.transpose(1, 2)))


def test_channel_layer_norm_normalises_each_frame_over_channels() -> None:
    out = ChannelLayerNorm(8)(torch.randn(3, 8, 5) * 4 + 2)  # (B, C, T)
    assert torch.allclose(out.mean(dim=1), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(out.var(dim=1, unbiased=False), torch.ones(3, 5), atol=1e-3)


def test_padded_conv_context() -> None:
    assert PaddedConv1d(4, 4, 3, dilation=9, causal=True).context == 18
    assert PaddedConv1d(4, 4, 4, stride=2, causal=True).context == 2
    assert PaddedConv1d(4, 4, 3, dilation=9).context == 0
    with pytest.raises(ValueError, match="stride"):
        PaddedConv1d(4, 4, 1, stride=2)


@pytest.mark.parametrize("causal", [True, False])
def test_encoder_causality(causal: bool) -> None:
    kw = dict(in_dim=10, width=32, depth=3, down_t=2, stride_t=2, dilation_growth_rate=3, output_emb_width=16)
    torch.manual_seed(0)
    enc = Encoder(**kw, causal=causal, norm="layer" if causal else "group")
    x = _motion(b=1, t=64)
    y = x.clone()
    k = 7  # perturb frames from the start of token k on
    y[:, k * 4 :] += torch.randn_like(y[:, k * 4 :])
    zx, zy = enc(x.transpose(1, 2)), enc(y.transpose(1, 2))  # (1, 16, 16)
    unchanged = torch.allclose(zx[..., :k], zy[..., :k], atol=1e-6)
    assert unchanged == causal
    assert not torch.allclose(zx[..., k], zy[..., k])


@pytest.mark.parametrize("causal", [True, False])
def test_decoder_causality(causal: bool) -> None:
    model = _model(causal=causal, depth=3).eval()
    indices = torch.randint(32, (1, 16), generator=torch.Generator().manual_seed(0))
    other = indices.clone()
    k = 9
    other[0, k] = (indices[0, k] + 1) % 32
    a, b = model.decode(indices), model.decode(other)  # (1, 64, 10)
    fpt = model.frames_per_token
    assert torch.allclose(a[:, : k * fpt], b[:, : k * fpt], atol=1e-6) == causal
    assert not torch.allclose(a[:, k * fpt : (k + 1) * fpt], b[:, k * fpt : (k + 1) * fpt])


def test_causal_tokens_ignore_the_future() -> None:
    model = _model(causal=True).eval()
    x = _motion(t=64)
    y = x.clone()
    y[:, 40:] = 5.0
    assert torch.equal(model.encode(x)[:, :10], model.encode(y)[:, :10])


def test_decoder_alone() -> None:
    dec = Decoder(
        in_dim=10, width=32, depth=1, down_t=2, stride_t=2, dilation_growth_rate=3, output_emb_width=16
    )
    assert dec(torch.randn(2, 16, 5)).shape == (2, 10, 20)


def test_model_learns_a_toy_motion() -> None:
    model = _model(nb_code=16)
    t = torch.linspace(0, 6.28, 32)
    x = torch.stack([torch.sin(t * (i + 1) / 3) for i in range(10)], dim=-1).repeat(4, 1, 1)  # (4, 32, 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        recon, q = model(x)
        loss = reconstruction_loss(recon, x) + velocity_loss(recon, x) + 0.02 * q.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]


@pytest.mark.parametrize("kind", ["smooth_l1", "l1", "l2"])
def test_losses_match_their_definitions(kind: str) -> None:
    pred, target = torch.randn(2, 6, 3) * 3, torch.randn(2, 6, 3)
    diff = (pred - target).abs()
    expected = {
        "smooth_l1": torch.where(diff < 1, 0.5 * diff**2, diff - 0.5),
        "l1": diff,
        "l2": diff**2,
    }[kind]
    assert torch.allclose(reconstruction_loss(pred, target, kind), expected.mean())
    assert torch.allclose(reconstruction_loss(pred, target, kind, torch.ones(3)), expected.mean())
    weights = torch.tensor([2.0, 0.0, 1.0])
    assert torch.allclose(reconstruction_loss(pred, target, kind, weights), (expected * weights).mean())


def test_velocity_loss_ignores_constant_offsets() -> None:
    target = torch.randn(2, 6, 3)
    assert velocity_loss(target + 3.0, target).item() == pytest.approx(0.0, abs=1e-10)
    moved = target.clone()
    moved[:, 3] += 1.0
    assert velocity_loss(moved, target, "l1").item() == pytest.approx(2 * 2 * 3 / (2 * 5 * 3))


def test_loss_errors_are_clear() -> None:
    x = torch.randn(2, 6, 3)
    with pytest.raises(ValueError, match="Unknown loss kind 'huber'.*smooth_l1"):
        reconstruction_loss(x, x, "huber")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        reconstruction_loss(x, x, weights=torch.ones(4))
    with pytest.raises(ValueError, match="non-negative"):
        reconstruction_loss(x, x, weights=-torch.ones(3))
    with pytest.raises(ValueError, match="differ"):
        reconstruction_loss(x, x[:, :5])
    with pytest.raises(ValueError, match="T >= 2"):
        velocity_loss(x[:, :1], x[:, :1])
