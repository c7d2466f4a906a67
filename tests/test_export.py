"""ONNX export end to end on a tiny model trained in seconds on real clips (the robot runtime's own tests,
on the bundled sample, are in test_runtime.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from motion_vqvae import Tokenizer
from motion_vqvae.data import load_motions, sample_motion_path
from motion_vqvae.export import ExportModules, ParityError, StreamingDecoder, export_checkpoint, parity
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.vqvae import VQVAE
from sim2real import TokenDecoder
from sim2real.manifest import manifest_digest
from sim2real.runtime import make_session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import export_onnx  # noqa: E402
from _tiny_tokenizer import NB_CODE, train_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def clips_glob(g1_moves_dir: Path) -> str:
    return str(g1_moves_dir / "B_*Karate.csv")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, clips_glob: str) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("causal"), clips_glob, 40)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, checkpoint: Path) -> Path:
    out = tmp_path_factory.mktemp("exports") / "tiny"
    assert export_onnx.main(["--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tok(checkpoint: Path) -> Tokenizer:
    return Tokenizer.load(checkpoint)


def test_export_writes_files_manifest_and_metadata(export_dir: Path, tok: Tokenizer) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"decoder.onnx", "decoder_step.onnx", "encoder.onnx", "codebook.npy"}
    assert manifest["streaming"] and manifest["causal"] and manifest["opset"] == 17
    spec, jmap = manifest["token_spec"], manifest["joint_map"]
    assert spec["nb_code"] == NB_CODE and spec["frames_per_token"] == 4 and spec["fps"] == 30
    assert len(manifest["position_limits"]["lower"]) == len(jmap["real_joint_names"]) == 29
    assert len(manifest["velocity_limits"]) == len(manifest["acceleration_limits"]) == 29
    assert jmap["sim_to_real_idx"] == list(range(29)) and jmap["sim_joint_names"] == tok.layout.joint_names
    # One fact, one place (format 4): fps, joint order and root-feature columns are stored once.
    text = json.dumps({k: v for k, v in manifest.items() if k != "parity"})
    assert text.count('"fps"') == 1 and text.count('"real_joint_names"') == 1
    assert text.count('"sim_joint_names"') == 1 and text.count('"sim_to_real_idx"') == 1
    assert text.count('"root_lin_vel"') == 1 and manifest["root_features"] == tok.layout.root_slices()
    assert FeatureLayout.from_manifest(manifest).to_dict() == tok.layout.to_dict()
    figures = manifest["parity"]
    assert figures["encoder_token_mismatches"] == 0 and figures["decoder_max_abs_err_rad"] <= 1e-4
    assert figures["step_vs_sequence_max_abs_err"] <= 1e-5 and figures["windows"] > 0
    np.testing.assert_array_equal(np.load(export_dir / "codebook.npy"), tok.model.quantizer.codebook.numpy())
    for name in ("decoder.onnx", "decoder_step.onnx", "encoder.onnx"):
        props = {p.key: p.value for p in onnx.load(str(export_dir / name)).metadata_props}
        assert props["role"] == name and json.loads(props["nb_code"]) == NB_CODE
        assert json.loads(props["fps"]) == 30 and json.loads(props["frames_per_token"]) == 4
        assert json.loads(props["real_joint_names"]) == jmap["real_joint_names"]
        assert props["manifest_sha256"] == manifest_digest(manifest)
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_onnx_targets_match_torch_decode_in_real_order(export_dir: Path, tok: Tokenizer, clips_glob) -> None:
    clip = load_motions(clips_glob, target_fps=30, repair_jumps=True)[0]
    tokens = tok.encode(clip)
    motion = tok.decode(tokens)  # torch, sim order, un-clamped
    manifest = json.loads((export_dir / "manifest.json").read_text())
    expected = np.clip(
        tok.joint_map.sim_to_real(motion.dof),
        manifest["position_limits"]["lower"],
        manifest["position_limits"]["upper"],
    )
    session = make_session(export_dir / "decoder.onnx")
    targets, root = session.run(None, {"tokens": np.stack([tokens, tokens])})
    assert targets.shape == (2, 4 * len(tokens), 29) and root.shape == (2, 4 * len(tokens), 8)
    np.testing.assert_allclose(targets[1], expected, atol=1e-4)
    np.testing.assert_allclose(root[0, :, 0], motion.root_pos[:, 2], atol=1e-4)  # height
    encoded = make_session(export_dir / "encoder.onnx")
    feats = tok.layout.normalize(tok.layout.from_motion(tok.prepare(clip)))[: 4 * (clip.num_frames // 4)]
    ids = encoded.run(None, {"features": feats[None].astype(np.float32)})[0]
    np.testing.assert_array_equal(ids[0], tokens[: len(ids[0])])


def test_streaming_decoder_matches_whole_sequence(tok: Tokenizer) -> None:
    model = tok.model
    stream = StreamingDecoder(model)
    tokens = torch.randint(0, NB_CODE, (3, 50))
    with torch.no_grad():
        full = model.decode(tokens)  # (3, 200, F)
        state = stream.init_state(3)
        frames = []
        for t in range(tokens.shape[1]):
            if t == 30:  # row 1 restarts: its later frames equal a fresh decode of its remaining tokens
                state = stream.reset_rows(state, torch.tensor([False, True, False]))
            out, state = stream.step(tokens[:, t], state)
            frames.append(out)
        stepped = torch.cat(frames, dim=1)
        restarted = model.decode(tokens[1:2, 30:])
    torch.testing.assert_close(stepped[[0, 2]], full[[0, 2]], atol=1e-5, rtol=0)
    torch.testing.assert_close(stepped[1, :120], full[1, :120], atol=1e-5, rtol=0)
    torch.testing.assert_close(stepped[1, 120:], restarted[0], atol=1e-5, rtol=0)


def test_failed_parity_leaves_nothing(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(parity, "TARGET_TOL", -1.0)
    out = tmp_path / "exports" / "bad"
    with pytest.raises(ParityError, match="decoder.onnx"):
        export_checkpoint(Tokenizer.load(checkpoint), out)
    assert export_onnx.main(["--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    assert list((tmp_path / "exports").iterdir()) == []


def test_a_checkpoint_path_is_refused_with_the_loader_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"Tokenizer\.load\(path\)"):
        export_checkpoint(tmp_path / "best.pt", tmp_path / "export")  # type: ignore[arg-type]
    assert not (tmp_path / "export").exists()


def test_non_causal_model_exports_without_step(tmp_path: Path, clips_glob: str) -> None:
    ckpt = train_tiny_tokenizer(tmp_path / "run", clips_glob, 4, causal=False)
    manifest = export_checkpoint(Tokenizer.load(ckpt), tmp_path / "export")
    assert not manifest["streaming"] and not manifest["causal"] and "step_steps" not in manifest["parity"]
    assert not (tmp_path / "export" / "decoder_step.onnx").exists()
    decoder = TokenDecoder(tmp_path / "export")
    assert decoder.decode([1, 2, 3], current=np.zeros(29)).shape == (12, 29)
    with pytest.raises(RuntimeError, match="non-causal"):
        decoder.step(1)
    assert ExportModules.from_tokenizer(Tokenizer.load(ckpt)).step is None


@pytest.mark.parametrize(
    "arch",
    [
        {"activation": "gelu", "norm": "layer", "down_t": 1},
        {"activation": "silu", "norm": "none", "down_t": 3, "depth": 3, "dilation_growth_rate": 2},
        {"down_t": 2, "quantizer": "rvq", "num_quantizers": 3, "quantize_dropout": 0.5},
        {"down_t": 2, "quantizer": "fsq", "fsq_levels": [4, 3, 3]},
        {
            "down_t": 2,
            "quantizer": "rvq",
            "num_quantizers": 2,
            "parts": {"a": [0, 2, 4, 6, 8, 10], "b": [1, 3, 5]},
        },
        {"down_t": 1, "parts": {"a": list(range(6)), "b": list(range(6, 12))}},
    ],
)
def test_streaming_decoder_matches_every_architecture(arch: dict) -> None:
    torch.manual_seed(0)
    model = VQVAE(in_dim=12, width=24, code_dim=8, nb_code=16, causal=True, fps=30.0, **arch).eval()
    stream = StreamingDecoder(model)
    spec = model.token_spec  # one stream: tokens [B, T]; RVQ, FSQ and body parts: [B, T, S]
    tokens = torch.randint(0, spec.nb_code, (2, 20) if spec.is_single else (2, 20, spec.num_streams))
    with torch.no_grad():
        full = model.decode(tokens)
        state, frames = stream.init_state(2), []
        for t in range(tokens.shape[1]):
            out, state = stream.step(tokens[:, t], state)
            frames.append(out)
    assert stream.frames_per_token == 2 ** arch["down_t"]
    torch.testing.assert_close(torch.cat(frames, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("structure", ["one_stream", "multi_level"])
def test_torch_comparison_lives_on_the_training_side(
    export_dir: Path, tok: Tokenizer, structure: str, tmp_path: Path
) -> None:
    from benchmarks.export import compare_with_torch

    if structure == "multi_level":  # the default's shape (RVQ levels x body parts), tiny and from the sample
        default_like = {"quantizer": "rvq", "num_quantizers": 2, "body_parts": "upper_lower"}
        ckpt = train_tiny_tokenizer(tmp_path / "run", str(sample_motion_path()), 4, **default_like)
        tok = Tokenizer.load(ckpt)
        assert tok.spec.num_streams == 4
        export_dir = tmp_path / "export"
        tok.export(export_dir)
    figures = compare_with_torch(export_dir, tok, steps=5, length=16, repeats=1)
    for key in (
        "step_p50_ms_1t",
        "torch_step_p50_ms_1t",
        "sequence_tokens_per_s",
        "sequence_graph_tokens_per_s",
        "torch_sequence_tokens_per_s",
    ):
        assert figures[key] > 0, key
    assert figures["step_speedup_vs_torch_1t"] > 0
