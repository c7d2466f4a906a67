"""The robot runtime on a tiny tokenizer trained from the bundled sample (no ../shared needed): integrity of
the export (files and manifest, checked against the robot YAML), reproducible exports, the safety API
(reset with the robot's pose, step, decode, hold, counters) and the torch-free layering."""

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

from motion_vqvae import Tokenizer
from motion_vqvae.agent import single_fps
from motion_vqvae.data import load_motions, resample, sample_motion_path
from motion_vqvae.export import export_checkpoint
from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint
from sim2real import TokenDecoder, load_robot
from sim2real import play as play_cli
from sim2real.bench import bench_export, limit_excess
from sim2real.manifest import validate_manifest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _tiny_tokenizer import NB_CODE, train_tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("sample"), str(sample_motion_path()), 30)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, checkpoint: Path) -> Path:
    out = tmp_path_factory.mktemp("exports") / "tiny"
    export_checkpoint(Tokenizer.load(checkpoint), out)
    return out


@pytest.fixture
def decoder(export_dir: Path) -> TokenDecoder:
    return TokenDecoder(export_dir)


def middle(decoder: TokenDecoder) -> np.ndarray:
    return (decoder.limits.lower + decoder.limits.upper) / 2


def test_two_exports_are_byte_identical_and_pass_the_checker(
    checkpoint: Path, export_dir: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    export_checkpoint(Tokenizer.load(checkpoint), again)
    names = sorted(p.name for p in export_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (export_dir / name).read_bytes() == (again / name).read_bytes(), name
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert str(checkpoint) not in json.dumps(manifest) and "created" not in manifest
    assert manifest["token_spec"]["fps"] == 30.0 and manifest["exporter"]
    for name in ("decoder.onnx", "decoder_step.onnx", "encoder.onnx"):
        onnx.checker.check_model(onnx.load(str(export_dir / name)), full_check=True)


def _edit(manifest: dict, edit: str) -> None:
    limits = manifest["position_limits"]
    if edit == "nan_limit":
        limits["lower"][3] = float("nan")
    elif edit == "widened":
        limits["lower"] = [-100.0] * len(limits["lower"])
        limits["upper"] = [100.0] * len(limits["upper"])
    elif edit == "velocity_x100":
        manifest["velocity_limits"] = [v * 100 for v in manifest["velocity_limits"]]
    elif edit == "acceleration_x10":
        manifest["acceleration_limits"] = [v * 10 for v in manifest["acceleration_limits"]]
    elif edit == "fps":
        manifest["token_spec"]["fps"] = 0.3
    elif edit == "reversed_names":
        manifest["joint_map"]["real_joint_names"] = manifest["joint_map"]["real_joint_names"][::-1]
    else:
        raise AssertionError(edit)


EDITS = ["nan_limit", "widened", "velocity_x100", "acceleration_x10", "fps", "reversed_names"]


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_manifest_is_refused(export_dir: Path, tmp_path: Path, edit: str) -> None:
    root = Path(shutil.copytree(export_dir, tmp_path / "copy"))
    manifest = json.loads((root / "manifest.json").read_text())
    _edit(manifest, edit)
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="edited|re-export"):
        TokenDecoder(root)


@pytest.mark.parametrize("edit", [e for e in EDITS if e != "fps"])
def test_limits_are_checked_against_the_robot_yaml(export_dir: Path, edit: str) -> None:
    """Independent of the pin: a manifest beyond the robot's hardware (or another joint order) is refused."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    validate_manifest(manifest, load_robot("g1_29dof"), "ok")
    _edit(manifest, edit)
    with pytest.raises(ValueError, match="finite|robot|differ"):
        validate_manifest(manifest, load_robot("g1_29dof"), "edited")


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_file_is_refused(export_dir: Path, tmp_path: Path, damage: str) -> None:
    root = Path(shutil.copytree(export_dir, tmp_path / "copy"))
    target = root / "decoder_step.onnx"
    data = target.read_bytes()
    if damage == "flip":
        target.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    else:
        target.unlink()
    with pytest.raises((ValueError, FileNotFoundError), match="sha256|truncated|missing"):
        TokenDecoder(root)


def test_step_needs_the_robots_pose_and_ramps_from_it(decoder: TokenDecoder) -> None:
    with pytest.raises(RuntimeError, match=r"reset\(current=q\)"):
        decoder.step(3)
    tokens = np.random.default_rng(1).integers(0, NB_CODE, 60)
    start = middle(decoder) + 0.01
    decoder.reset(current=start)
    stepped = np.concatenate([decoder.step(int(t)) for t in tokens])
    whole = decoder.decode(tokens, current=start)
    np.testing.assert_allclose(stepped, whole, atol=1e-5)
    excess = limit_excess(decoder.limits, start, stepped)
    assert excess["position_rad"] <= 1e-12 and max(excess["velocity_rel"], excess["acceleration_rel"]) <= 1e-9
    with pytest.raises(TypeError):
        decoder.reset()  # the measured pose is required
    with pytest.raises(ValueError, match="left_hip_pitch_joint"):
        decoder.reset(current=np.full(29, np.nan))
    with pytest.raises(RuntimeError, match="pose"):
        decoder.step(3)  # a refused pose leaves none known, not the previous one


def test_offline_decode_and_batches(decoder: TokenDecoder) -> None:
    tokens = np.array([[1, 2, 3], [4, 5, 6]])
    batch = decoder.decode(tokens, current=middle(decoder))
    assert batch.shape == (2, 12, 29)
    np.testing.assert_allclose(batch[1], decoder.decode(tokens[1], current=middle(decoder)))
    offline = decoder.decode(tokens[0], offline=True)
    assert offline.shape == (12, 29) and np.all(offline >= decoder.limits.lower)
    with pytest.raises(ValueError, match="measured pose.*offline=True"):
        decoder.decode(tokens[0])
    with pytest.raises(ValueError, match="not both"):
        decoder.decode(tokens[0], current=middle(decoder), offline=True)


def test_hold_stops_and_counters_are_readable(decoder: TokenDecoder) -> None:
    decoder.reset(current=decoder.limits.lower + 0.01)
    moving = np.concatenate([decoder.step(t) for t in (31, 0, 31, 0)])
    held = np.concatenate([decoder.hold(), decoder.step(None), decoder.hold(), decoder.hold()])
    excess = limit_excess(decoder.limits, decoder.limits.lower + 0.01, np.concatenate([moving, held]))
    assert excess["velocity_rel"] <= 1e-9 and excess["acceleration_rel"] <= 1e-9
    np.testing.assert_array_equal(held[-1], held[-2])
    counts = decoder.interventions
    assert counts["hold"] == 16 and counts["velocity"] + counts["acceleration"] > 0
    assert set(counts) == {"position", "velocity", "acceleration", "nonfinite", "hold"}


def test_returned_targets_are_copies(decoder: TokenDecoder) -> None:
    decoder.reset(current=middle(decoder))
    first = decoder.step(5)
    first[:] = 99.0
    assert np.all(decoder.step(5) < 10)


def test_bad_tokens_raise_naming_the_range(decoder: TokenDecoder) -> None:
    decoder.reset(current=middle(decoder))
    for bad in ([-1, 3], [NB_CODE], [2.5], 1.0, [True], []):
        with pytest.raises(ValueError, match=rf"\[0, {NB_CODE - 1}\]|shape"):
            decoder.decode(bad, offline=True)
    for bad in (NB_CODE, -1, 2.5, (1, 2)):
        with pytest.raises(ValueError, match=rf"\[0, {NB_CODE - 1}\]|one token"):
            decoder.step(bad)


def test_non_finite_output_stops_and_is_counted(decoder: TokenDecoder, caplog) -> None:
    decoder.reset(current=middle(decoder))
    decoder.step(5)
    real_session = decoder._step

    class Poisoned:
        def run(self, token):
            targets, root = real_session.run(token)
            targets[2:, 3] = np.nan
            return targets, root

        def reset(self):
            real_session.reset()

    decoder._step = Poisoned()
    with caplog.at_level(logging.WARNING, logger="sim2real.safety"):
        held = decoder.step(6)
    assert np.all(np.isfinite(held)) and decoder.nonfinite_frames == 2
    assert "non-finite" in caplog.text
    decoder._step = real_session
    assert np.all(np.isfinite(decoder.step(7)))


def test_robot_override_uses_that_yamls_safety_section(export_dir: Path, tmp_path: Path) -> None:
    text = (REPO / "sim2real" / "robots" / "g1_29dof.yaml").read_text()
    tighter = tmp_path / "g1_slow.yaml"
    tighter.write_text(text.replace("velocity_scale: 0.5", "velocity_scale: 0.1"))
    slow = TokenDecoder(export_dir, robot=tighter)
    np.testing.assert_allclose(slow.limits.velocity, TokenDecoder(export_dir).limits.velocity / 5)


def test_play_cli_prints_and_writes_csv(export_dir: Path, tmp_path: Path, capsys) -> None:
    assert play_cli.main([str(export_dir), "--tokens", "3,17,17,30", "--offline"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["frame", "time", "left_hip_pitch_joint"] and len(lines) == 17
    out = tmp_path / "targets.csv"
    pose = ",".join(["0.0"] * 29)
    assert (
        play_cli.main([str(export_dir), "--tokens", "3,17", "--csv", str(out), "--step", "--current", pose])
        == 0
    )
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (8, 31)
    assert play_cli.main([str(export_dir), "--tokens", f"3,{NB_CODE}", "--offline"]) == 2
    assert f"[0, {NB_CODE - 1}]" in capsys.readouterr().err


def test_bench_streams_within_limits(export_dir: Path) -> None:
    figures = bench_export(export_dir, steps=20, sequence_tokens=16, repeats=1, stress_tokens=2000)
    assert figures["stress_within_limits"] and figures["stress_tokens"] == 2000
    assert figures["step_p50_ms_1t"] > 0 and figures["sequence_tokens_per_s"] > 0


def test_runtime_never_imports_torch_and_jointmap_skips_onnxruntime(export_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "motion_vqvae", "scipy"):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        from sim2real import JointMap
        assert "onnxruntime" not in sys.modules, "JointMap loaded onnxruntime"
        import sim2real, sim2real.bench, sim2real.play
        decoder = sim2real.TokenDecoder({str(export_dir)!r})
        decoder.reset(current=[0.0] * 29)
        print(decoder.decode([3, 17, 17, 30], current=[0.0] * 29).shape, decoder.step(3).shape)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "(16, 29) (4, 29)" in done.stdout


def test_fps_is_a_required_fact(checkpoint: Path, tmp_path: Path) -> None:
    clip = load_motions(sample_motion_path())[0]
    assert single_fps([clip, clip]) == clip.fps
    with pytest.raises(ValueError, match="target_fps"):
        single_fps([clip, resample(clip, clip.fps * 2)])
    state = load_checkpoint(checkpoint)
    assert state["token_spec"]["fps"] == state["model_hparams"]["fps"] == 30.0
    del state["token_spec"]  # a checkpoint from before the token structure (and its fps) was stored
    save_checkpoint(state, tmp_path / "no_fps.pt")
    with pytest.raises(ValueError, match="retrain"):
        export_checkpoint(Tokenizer.load(tmp_path / "no_fps.pt"), tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_multi_stream_export_streams_tuples_safely(tmp_path: Path) -> None:
    """RVQ with two levels per body part (upper, lower): four token streams per step."""
    checkpoint = train_tiny_tokenizer(
        tmp_path / "rvq",
        str(sample_motion_path()),
        8,
        quantizer="rvq",
        num_quantizers=2,
        body_parts="upper_lower",
    )
    export_checkpoint(Tokenizer.load(checkpoint), tmp_path / "export")
    decoder = TokenDecoder(tmp_path / "export")
    spec = decoder.token_spec
    assert spec.num_streams == 4 and not spec.is_single
    tokens = np.random.default_rng(3).integers(0, spec.nb_code, (40, 4))
    start = middle(decoder)
    decoder.reset(current=start)
    stepped = np.concatenate([decoder.step(tuple(int(v) for v in t)) for t in tokens])
    np.testing.assert_allclose(stepped, decoder.decode(tokens, current=start), atol=1e-5)
    assert decoder.decode(tokens[None].repeat(2, 0), current=start).shape == (2, 160, 29)
    excess = limit_excess(decoder.limits, start, stepped)
    assert excess["position_rad"] <= 1e-12 and max(excess["velocity_rel"], excess["acceleration_rel"]) <= 1e-9
    for bad in (3, (1, 2), (0, 0, 0, spec.nb_code)):
        with pytest.raises(ValueError, match="streams|one token|range|\\[0,"):
            decoder.step(bad)
    assert bench_export(tmp_path / "export", steps=10, sequence_tokens=8, repeats=1, stress_tokens=200)[
        "stress_within_limits"
    ]
