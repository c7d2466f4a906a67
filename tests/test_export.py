"""ONNX export and the robot-side runtime, end to end on a tiny model trained in seconds on real clips."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.data import load_motions
from motion_vqvae.export import ExportModules, ParityError, StreamingDecoder, export_checkpoint, parity
from motion_vqvae.models.vqvae import VQVAE
from sim2real import TokenDecoder
from sim2real import play as play_cli
from sim2real.bench import bench_export
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
def agent(checkpoint: Path) -> MVQVAEAgent:
    return MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture
def copy_of(export_dir: Path, tmp_path: Path):
    def make() -> Path:
        return Path(shutil.copytree(export_dir, tmp_path / "copy"))

    return make


def test_export_writes_files_manifest_and_metadata(export_dir: Path, agent: MVQVAEAgent) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"decoder.onnx", "decoder_step.onnx", "encoder.onnx", "codebook.npy"}
    assert manifest["streaming"] and manifest["causal"] and manifest["opset"] == 17
    assert manifest["nb_code"] == NB_CODE and manifest["frames_per_token"] == 4 and manifest["fps"] == 30
    assert len(manifest["position_limits"]["lower"]) == len(manifest["real_joint_names"]) == 29
    assert len(manifest["velocity_limits"]) == 29 and manifest["sim_to_real_idx"] == list(range(29))
    assert manifest["feature_layout"] == agent.layout.to_dict()
    figures = manifest["parity"]
    assert figures["encoder_token_mismatches"] == 0 and figures["decoder_max_abs_err_rad"] <= 1e-4
    assert figures["step_vs_sequence_max_abs_err"] <= 1e-5 and figures["windows"] > 0
    np.testing.assert_array_equal(
        np.load(export_dir / "codebook.npy"), agent.model.quantizer.codebook.numpy()
    )
    for name in ("decoder.onnx", "decoder_step.onnx", "encoder.onnx"):
        props = {p.key: p.value for p in onnx.load(str(export_dir / name)).metadata_props}
        assert props["role"] == name and json.loads(props["nb_code"]) == NB_CODE
        assert json.loads(props["real_joint_names"]) == manifest["real_joint_names"]
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_onnx_targets_match_torch_decode_in_real_order(
    export_dir: Path, agent: MVQVAEAgent, clips_glob
) -> None:
    clip = load_motions(clips_glob, target_fps=30, repair_jumps=True)[0]
    tokens = agent.encode(clip)
    motion = agent.decode(tokens)  # torch, sim order, un-clamped
    manifest = json.loads((export_dir / "manifest.json").read_text())
    expected = np.clip(
        agent.joint_map.sim_to_real(motion.dof),
        manifest["position_limits"]["lower"],
        manifest["position_limits"]["upper"],
    )
    session = make_session(export_dir / "decoder.onnx")
    targets, root = session.run(None, {"tokens": np.stack([tokens, tokens])})
    assert targets.shape == (2, 4 * len(tokens), 29) and root.shape == (2, 4 * len(tokens), 8)
    np.testing.assert_allclose(targets[1], expected, atol=1e-4)
    np.testing.assert_allclose(root[0, :, 0], motion.root_pos[:, 2], atol=1e-4)  # height
    encoded = make_session(export_dir / "encoder.onnx")
    feats = agent.layout.normalize(agent.layout.from_motion(agent.prepare(clip)))[
        : 4 * (clip.num_frames // 4)
    ]
    ids = encoded.run(None, {"features": feats[None].astype(np.float32)})[0]
    np.testing.assert_array_equal(ids[0], tokens[: len(ids[0])])


def test_streaming_decoder_matches_whole_sequence(agent: MVQVAEAgent) -> None:
    model = agent.model
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


def test_runtime_step_equals_decode(export_dir: Path) -> None:
    decoder = TokenDecoder(export_dir)
    tokens = np.random.default_rng(1).integers(0, NB_CODE, 200)
    whole = decoder.decode(tokens)
    stepped = np.concatenate([decoder.step(int(t)) for t in tokens])
    assert whole.shape == stepped.shape == (800, 29)
    np.testing.assert_allclose(stepped, whole, atol=1e-5)
    decoder.reset()
    np.testing.assert_allclose(decoder.step(tokens[0]), whole[:4], atol=1e-5)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_tampered_export_is_refused(copy_of, damage: str) -> None:
    root = copy_of()
    target = root / "decoder_step.onnx"
    data = target.read_bytes()
    if damage == "flip":
        target.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
        error, match = ValueError, "sha256"
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
        error, match = ValueError, "truncated"
    else:
        target.unlink()
        error, match = FileNotFoundError, "missing"
    with pytest.raises(error, match=match):
        TokenDecoder(root)


def test_bad_tokens_raise_naming_the_range(export_dir: Path) -> None:
    decoder = TokenDecoder(export_dir)
    for bad in ([-1, 3], [NB_CODE], [2.5], 1.0, [True], []):
        with pytest.raises(ValueError, match=rf"\[0, {NB_CODE - 1}\]"):
            decoder.decode(bad)
    with pytest.raises(ValueError, match=rf"\[0, {NB_CODE - 1}\]"):
        decoder.step(NB_CODE)


def test_position_and_velocity_limits_hold_across_tokens(copy_of) -> None:
    root = copy_of()
    manifest = json.loads((root / "manifest.json").read_text())
    lower = np.array(manifest["position_limits"]["lower"])
    upper = lower + 0.05  # narrow band at the bottom of every joint's range
    manifest["position_limits"]["upper"] = upper.tolist()
    manifest["velocity_limits"] = [0.6] * 29  # rad/s: 0.02 rad per frame at 30 fps
    (root / "manifest.json").write_text(json.dumps(manifest))
    decoder = TokenDecoder(root)
    tokens = np.random.default_rng(2).integers(0, NB_CODE, 40)
    for frames in (decoder.decode(tokens), np.concatenate([decoder.step(t) for t in tokens])):
        assert np.all(frames >= lower - 1e-12) and np.all(frames <= upper + 1e-12)
        assert np.abs(np.diff(frames, axis=0)).max() <= 0.02 + 1e-12
    decoder.reset(current=lower + 0.05)
    first = decoder.step(0)
    assert np.all(np.abs(first[0] - (lower + 0.05)) <= 0.02 + 1e-12), "ramps from the robot's pose"


def test_non_finite_output_holds_last_safe_target(export_dir: Path, caplog) -> None:
    decoder = TokenDecoder(export_dir)
    good = decoder.step(5)
    real_session = decoder._step

    class Poisoned:
        def run(self, token):
            targets, root = real_session.run(token)
            targets[2:, 3] = np.nan
            return targets, root

        def reset(self):
            real_session.reset()

    decoder._step = Poisoned()
    with caplog.at_level(logging.WARNING, logger="sim2real.runtime"):
        held = decoder.step(6)
    assert np.all(np.isfinite(held)) and decoder.nonfinite_frames == 2
    np.testing.assert_array_equal(held[2], held[1])
    np.testing.assert_array_equal(held[3], held[1])
    assert "non-finite" in caplog.text
    decoder._step = real_session
    assert np.all(np.isfinite(decoder.step(7))) and good.shape == (4, 29)


def test_runtime_works_where_torch_cannot_be_imported(export_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "motion_vqvae", "scipy"):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch was importable")
        import sim2real
        decoder = sim2real.TokenDecoder({str(export_dir)!r})
        print(decoder.decode([3, 17, 17, 30]).shape, decoder.step(3).shape)
        assert not any(m.split(".")[0] in ("torch", "motion_vqvae") for m in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "(16, 29) (4, 29)" in done.stdout


def test_play_cli_prints_and_writes_csv(export_dir: Path, tmp_path: Path, capsys) -> None:
    assert play_cli.main([str(export_dir), "--tokens", "3,17,17,30"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["frame", "time", "left_hip_pitch_joint"] and len(lines) == 17
    out = tmp_path / "targets.csv"
    assert play_cli.main([str(export_dir), "--tokens", "3,17", "--csv", str(out), "--step"]) == 0
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (8, 31)
    assert play_cli.main([str(export_dir), "--tokens", f"3,{NB_CODE}"]) == 2
    assert f"[0, {NB_CODE - 1}]" in capsys.readouterr().err


def test_bench_reports_onnx_and_torch_figures(export_dir: Path) -> None:
    figures = bench_export(export_dir, steps=5, sequence_tokens=16, repeats=1)
    for key in ("step_p50_ms_1t", "step_p99_ms_1t", "step_p50_ms_2t", "step_p99_ms_2t"):
        assert figures[key] > 0
    for key in ("torch_step_p50_ms_1t", "sequence_tokens_per_s", "torch_sequence_tokens_per_s"):
        assert figures[key] > 0, key


def test_failed_parity_leaves_nothing(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(parity, "TARGET_TOL", -1.0)
    out = tmp_path / "exports" / "bad"
    with pytest.raises(ParityError, match="decoder.onnx"):
        export_checkpoint(checkpoint, out)
    assert export_onnx.main(["--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    assert list((tmp_path / "exports").iterdir()) == []


def test_non_causal_model_exports_without_step(tmp_path: Path, clips_glob: str) -> None:
    ckpt = train_tiny_tokenizer(tmp_path / "run", clips_glob, 4, causal=False)
    manifest = export_checkpoint(ckpt, tmp_path / "export")
    assert not manifest["streaming"] and not manifest["causal"] and "step_steps" not in manifest["parity"]
    assert not (tmp_path / "export" / "decoder_step.onnx").exists()
    decoder = TokenDecoder(tmp_path / "export")
    assert decoder.decode([1, 2, 3]).shape == (12, 29)
    with pytest.raises(RuntimeError, match="non-causal"):
        decoder.step(1)
    assert ExportModules.from_agent(MVQVAEAgent.from_checkpoint(ckpt)).step is None


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
