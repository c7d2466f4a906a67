"""The robot runtime's edges (issue 23) on a tiny tokenizer trained from the bundled sample: limits that no
file or argument can widen, measured poses that cannot be a pose of the robot, a ramp back into the range
asked for by name, the command line's measured pose, and graphs that do not match their manifest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from motion_vqvae import Tokenizer
from motion_vqvae.data import sample_motion_path
from motion_vqvae.export import export_checkpoint
from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint
from sim2real import SafetyLimits, SafetySpec, TokenDecoder, load_robot
from sim2real import play as play_cli
from sim2real.bench import limit_excess
from sim2real.pose import RAMP_MAX_OUTSIDE
from sim2real.safety import limits_for_robot, limits_in_force

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _resign import resign  # noqa: E402
from _tiny_tokenizer import NB_CODE, train_tiny_tokenizer  # noqa: E402

G1_YAML = REPO / "sim2real" / "robots" / "g1_29dof.yaml"
KNEE = "left_knee_joint"
HIP = "left_hip_pitch_joint"  # a wide range: room to ramp in and move


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"), str(sample_motion_path()), 30)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Path:
    out = tmp_path_factory.mktemp("exports") / "full"
    export_checkpoint(Tokenizer.load(checkpoint), out)
    return out


def copy_export(export_dir: Path, tmp_path: Path) -> tuple[Path, dict]:
    root = Path(shutil.copytree(export_dir, tmp_path / "copy"))
    return root, json.loads((root / "manifest.json").read_text())


def robot_file(path: Path, edit: Callable[[dict], object]) -> Path:
    """A copy of the packaged G1 YAML (name g1_29dof) with ``edit`` applied."""
    data = yaml.safe_load(G1_YAML.read_text())
    del data["mjcf"]  # relative to the package's YAML; the limits do not need it
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def _joint(key: str, value: Callable[[float], float]) -> Callable[[dict], None]:
    return lambda d: d["joints"][KNEE].update({key: value(d["joints"][KNEE].get(key, 0.0))})


def _safety(key: str, value: float) -> Callable[[dict], None]:
    return lambda d: d["safety"].update({key: value})


# Each widens one limit of the packaged G1 (and says how the refusal names it).
WIDENINGS = {
    "lower": (_joint("lower", lambda v: v - 0.5), f"joints.{KNEE}.lower"),
    "upper": (_joint("upper", lambda v: v + 0.5), f"joints.{KNEE}.upper"),
    "velocity": (_joint("velocity", lambda v: v * 3.75), f"joints.{KNEE}.velocity"),
    "offset": (_joint("offset", lambda v: 0.3), f"joints.{KNEE} sign/offset"),
    "position_margin": (_safety("position_margin", 0.0), "safety.position_margin"),
    "velocity_scale": (_safety("velocity_scale", 1.0), "safety.velocity_scale"),
    "acceleration": (_safety("acceleration", 900.0), "safety.acceleration"),
    "max_acceleration": (_safety("max_acceleration", 2000.0), "safety.max_acceleration"),
}


@pytest.mark.parametrize("widen", sorted(WIDENINGS))
def test_a_resigned_export_whose_robot_file_widens_a_limit_is_refused(
    export_dir: Path, tmp_path: Path, widen: str
) -> None:
    """The issue's hostile tester: a loose robot.yaml beside the export, named in the manifest, the limits it
    gives written into the manifest, pin and hashes recomputed."""
    root, manifest = copy_export(export_dir, tmp_path)
    resign(root, dict(manifest))
    TokenDecoder(root)  # re-signing alone is not what gets refused
    loose = robot_file(root / "robot.yaml", WIDENINGS[widen][0])
    description = load_robot(loose)
    manifest["robot"] = str(loose)
    manifest.update(limits_for_robot(description.real_limits(), description.safety, 30.0).to_manifest())
    resign(root, manifest)
    with pytest.raises(ValueError, match="not a robot shipped with sim2real") as refused:
        TokenDecoder(root)
    assert "robot=" not in str(refused.value)  # robot= is no cure for an export's robot
    with pytest.raises(ValueError, match=re.escape(WIDENINGS[widen][1])):
        TokenDecoder(export_dir, robot=loose)  # nor can robot= widen anything


def test_a_resigned_manifest_cannot_loosen_the_packaged_safety_section(
    export_dir: Path, tmp_path: Path
) -> None:
    """Limits inside the hardware but wider than the packaged YAML's safety section load tightened to it."""
    root, manifest = copy_export(export_dir, tmp_path)
    hardware = load_robot("g1_29dof")
    loose = SafetySpec(position_margin=0.0, velocity_scale=1.0, acceleration=1000.0)
    manifest.update(limits_for_robot(hardware.real_limits(), loose, 30.0).to_manifest())
    resign(root, manifest)
    edited, original = TokenDecoder(root).limits, TokenDecoder(export_dir).limits
    for key in ("lower", "upper", "velocity", "acceleration"):
        np.testing.assert_array_equal(getattr(edited, key), getattr(original, key), err_msg=key)
    assert original.velocity.max() == 18.5 and original.acceleration.max() == 400.0


def test_robot_files_must_restrict_a_packaged_robot(export_dir: Path, tmp_path: Path) -> None:
    renamed = robot_file(tmp_path / "mine.yaml", lambda d: d.update(name="my_g1"))
    with pytest.raises(ValueError, match="'my_g1' is not a robot shipped with sim2real"):
        TokenDecoder(export_dir, robot=renamed)
    with pytest.raises(ValueError, match="made for 'g1_29dof'"):
        TokenDecoder(export_dir, robot="g1_23dof")
    slower = robot_file(tmp_path / "slow.yaml", _safety("velocity_scale", 0.25))
    np.testing.assert_allclose(
        TokenDecoder(export_dir, robot=slower).limits.velocity, TokenDecoder(export_dir).limits.velocity / 2
    )


def test_limits_in_force_are_the_tightest_and_refuse_disjoint_ranges() -> None:
    robot = load_robot("g1_29dof")
    packaged = limits_for_robot(robot.real_limits(), robot.safety, 30.0)
    lower, upper, velocity = packaged.lower - 1, packaged.upper + 1, packaged.velocity * 2
    wide = SafetyLimits(lower, upper, velocity, packaged.acceleration, 30.0)
    tight = limits_in_force(wide, [robot], 0.5, "test")
    np.testing.assert_array_equal(tight.lower, packaged.lower)
    np.testing.assert_array_equal(tight.upper, packaged.upper)
    np.testing.assert_allclose(tight.velocity, packaged.velocity * 0.5)
    np.testing.assert_allclose(tight.acceleration, packaged.acceleration * 0.5)
    j = robot.real_joint_names.index(KNEE)
    below = packaged.upper.copy()
    below[j] = packaged.lower[j] - 0.01  # a range entirely below the packaged one
    disjoint = SafetyLimits(packaged.lower - 1, below, packaged.velocity, packaged.acceleration, 30.0)
    with pytest.raises(ValueError, match=rf"do not overlap at \['{KNEE}'\]"):
        limits_in_force(disjoint, [robot], 1.0, "test")


def test_robot_argument_keeps_the_exports_safety_scale(
    checkpoint: Path, export_dir: Path, tmp_path: Path
) -> None:
    """A --safety-scale 0.5 export: 9.25 rad/s and 200 rad/s², whatever robot the decoder is given."""
    half = tmp_path / "half"
    export_checkpoint(Tokenizer.load(checkpoint), half, safety_scale=0.5)
    full = TokenDecoder(export_dir).limits
    copy = robot_file(tmp_path / "g1_copy.yaml", lambda d: None)
    for robot in (None, "g1_29dof", copy):
        limits = TokenDecoder(half, robot=robot).limits
        np.testing.assert_allclose(limits.velocity, full.velocity * 0.5)
        np.testing.assert_allclose(limits.acceleration, full.acceleration * 0.5)
        np.testing.assert_array_equal(limits.lower, full.lower)
        assert limits.velocity.max() == 9.25 and limits.acceleration.max() == 200.0


def test_export_names_the_packaged_robot_a_robot_file_restricts(
    checkpoint: Path, export_dir: Path, tmp_path: Path
) -> None:
    files = {
        "tight": robot_file(tmp_path / "g1_tight.yaml", _safety("velocity_scale", 0.25)),
        "loose": robot_file(tmp_path / "g1_loose.yaml", WIDENINGS["velocity"][0]),
    }
    for name, path in files.items():
        state = load_checkpoint(checkpoint)
        state["config"]["robot"] = str(path)  # trained with a YAML path, as on a training machine
        save_checkpoint(state, tmp_path / f"{name}.pt")
    manifest = export_checkpoint(Tokenizer.load(tmp_path / "tight.pt"), tmp_path / "tight")
    assert manifest["robot"] == "g1_29dof"
    assert str(tmp_path) not in (tmp_path / "tight" / "manifest.json").read_text()  # no machine path
    np.testing.assert_allclose(
        TokenDecoder(tmp_path / "tight").limits.velocity, TokenDecoder(export_dir).limits.velocity / 2
    )
    with pytest.raises(ValueError, match=re.escape(f"joints.{KNEE}.velocity")):
        export_checkpoint(Tokenizer.load(tmp_path / "loose.pt"), tmp_path / "loose")
    assert not (tmp_path / "loose").exists()


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (2, "format_version 2.*older.*re-export with"),
        (3, "format_version 3.*older.*several places.*re-export with"),
        (5, "format_version 5.*update sim2real"),
    ],
)
def test_other_manifest_formats_are_refused(
    export_dir: Path, tmp_path: Path, version: int, message: str
) -> None:
    root, manifest = copy_export(export_dir, tmp_path)
    manifest["format_version"] = version
    resign(root, manifest)
    with pytest.raises(ValueError, match=message):
        TokenDecoder(root)


def _pose_case(decoder: TokenDecoder, case: str) -> tuple[np.ndarray, str]:
    lower, upper = decoder.hardware_range
    pose = (lower + upper) / 2
    j = decoder.real_joint_names.index(KNEE)
    if case == "10_rad_over":
        pose[j] = upper[j] + 10.0
        return pose, rf"{KNEE} = {pose[j]:.6g} rad is outside its range \[{lower[j]:.6g}, {upper[j]:.6g}\]"
    if case in ("nan", "inf"):
        pose[j] = float(case)
        return pose, rf"{KNEE} = {case} rad is not finite, its range \[{lower[j]:.6g}, {upper[j]:.6g}\]"
    if case == "1e300":
        pose[j] = -1e300
        return pose, rf"{KNEE} = -1e\+300 rad is outside its range"
    if case == "short":
        return pose[:28], "28 joint values, g1_29dof has 29.*no value for right_wrist_yaw_joint"
    return np.append(pose, 0.0), "30 joint values.*after the last joint, right_wrist_yaw_joint"


@pytest.mark.parametrize("case", ["10_rad_over", "nan", "inf", "1e300", "short", "long"])
def test_a_pose_that_cannot_be_the_robots_is_refused(export_dir: Path, case: str) -> None:
    decoder = TokenDecoder(export_dir)
    pose, message = _pose_case(decoder, case)
    with pytest.raises(ValueError, match=message):
        decoder.reset(current=pose)
    with pytest.raises(ValueError, match=message):
        decoder.reset(current=pose, recover="ramp")  # a ramp only brings back what can be a pose
    with pytest.raises(ValueError, match=message):
        decoder.decode([1, 2], current=pose)
    with pytest.raises(RuntimeError, match="pose"):
        decoder.step(1)


def test_recover_ramp_brings_a_joint_back_into_its_range(export_dir: Path) -> None:
    decoder = TokenDecoder(export_dir)
    limits, (lower, upper) = decoder.limits, decoder.hardware_range
    j = decoder.real_joint_names.index(HIP)
    pose = (lower + upper) / 2
    pose[j] = upper[j] + 0.3  # moved there while limp
    with pytest.raises(ValueError, match=rf"{HIP} = .* is outside its range.*recover='ramp'"):
        decoder.reset(current=pose)
    with pytest.raises(ValueError, match="recover must be"):
        decoder.reset(current=pose, recover="jump")
    decoder.reset(current=pose, recover="ramp")
    tokens = np.random.default_rng(0).integers(0, NB_CODE, 30)
    frames = np.concatenate([decoder.step(int(t)) for t in tokens])
    path = frames[:, j]
    inside = int(np.flatnonzero(path <= limits.upper[j])[0])
    assert np.all(np.diff(np.concatenate([[pose[j]], path[: inside + 1]])) <= 1e-12)  # only ever inward
    distance, v, a = pose[j] - limits.upper[j], limits.velocity[j], limits.acceleration[j]
    assert inside + 1 <= (distance / v + v / a) * decoder.fps + 1  # frames: at up to the velocity limit
    assert np.all(path[inside:] <= limits.upper[j] + 1e-12)  # and stays inside
    excess = limit_excess(limits, pose, frames)
    assert max(excess["velocity_rel"], excess["acceleration_rel"]) <= 1e-9 and excess["position_rad"] <= 1e-12
    pose[j] = upper[j] + RAMP_MAX_OUTSIDE + 0.1
    with pytest.raises(ValueError, match="not a pose the joint can be in"):
        decoder.reset(current=pose, recover="ramp")


def test_play_needs_a_measured_pose_or_offline(export_dir: Path, capsys) -> None:
    base = [str(export_dir), "--tokens", "3,17,17,30"]
    zeros = ",".join(["0"] * 29)
    for extra in ([], ["--step"], ["--offline", "--current", zeros]):
        assert play_cli.main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1 and err[0].startswith("error:") and "--current" in err[0] and "--offline" in err[0]
        )
    assert play_cli.main([*base, "--step", "--current", ",".join(["50"] + ["0"] * 28)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: current: {HIP} = 50 rad is outside its range")
    assert play_cli.main([*base, "--step", "--offline"]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "sim2real.play", *base, "--step"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error:")


def crafted_decoder(path: Path, manifest: dict, frames: int) -> None:
    """A graph with the inputs of ``path``'s role that emits ``frames`` frames of zeros per call."""
    step = path.name == "decoder_step.onnx"
    widths = {"joint_targets": manifest["joint_map"]["real_dof"], "root_features": 8}
    token = ("token", ["batch"]) if step else ("tokens", ["batch", "tokens"])
    inputs = [helper.make_tensor_value_info(token[0], TensorProto.INT64, token[1])]
    outputs, nodes = [], []
    for name, width in widths.items():
        shape = helper.make_tensor(f"{name}_shape", TensorProto.INT64, [3], [1, frames, width])
        zero = helper.make_tensor(f"{name}_zero", TensorProto.FLOAT, [1], [0.0])
        nodes.append(helper.make_node("Constant", [], [f"{name}_shape"], value=shape))
        nodes.append(helper.make_node("ConstantOfShape", [f"{name}_shape"], [name], value=zero))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, frames, width]))
    for state in manifest["step_state"] if step else []:
        shape = state["shape"]
        inputs.append(helper.make_tensor_value_info(state["input"], TensorProto.FLOAT, shape))
        nodes.append(helper.make_node("Identity", [state["input"]], [state["output"]]))
        outputs.append(helper.make_tensor_value_info(state["output"], TensorProto.FLOAT, shape))
    model = helper.make_model(
        helper.make_graph(nodes, "crafted", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.parametrize("name", ["decoder_step.onnx", "decoder.onnx"])
def test_a_graph_emitting_other_frames_per_token_is_refused(
    export_dir: Path, tmp_path: Path, name: str
) -> None:
    root, manifest = copy_export(export_dir, tmp_path)
    crafted_decoder(root / name, manifest, 20_000)
    resign(root, manifest)
    with pytest.raises(ValueError, match=rf"{name} emits outputs of shapes \[\(1, 20000, 29\)"):
        TokenDecoder(root)
    fits = 4 if name == "decoder_step.onnx" else 8  # one token, or the two tokens of the load check
    crafted_decoder(root / name, manifest, fits)
    resign(root, manifest)
    decoder = TokenDecoder(root)  # right shapes: the crafted graph itself is not what gets refused
    if name == "decoder.onnx":
        with pytest.raises(ValueError, match=r"emitted targets \[1, 8, 29\] for tokens \[1, 3\]"):
            decoder.decode([1, 2, 3], offline=True)
