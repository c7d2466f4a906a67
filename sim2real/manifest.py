"""The export manifest: what an export directory holds, read and verified before anything is run.

``manifest.json`` lists every file of the export with its size and sha256; :func:`load_manifest` refuses a
directory where a listed file is missing, truncated or altered. The manifest itself is pinned: the sha256
of its content without the ``files`` table (:func:`manifest_digest`) is written into every ONNX file's
metadata (``manifest_sha256``) before the files are hashed, so an edited limit, fps or joint name no longer
matches the hashed ONNX files and is refused (:func:`check_pin`). :func:`validate_manifest` then checks the
values against the packaged YAML of the robot the manifest names (``robot``: a name, never a path; see
:mod:`sim2real.hardware`): finite, not wider than the hardware, same joint order, one fps. The limits in force
are the tightest of the manifest's and the robot YAML's at the export's ``safety_scale``.

Format 4 stores each fact once: the fps, frames per token and vocabulary in ``token_spec``, the joint
order (simulator and real names, ``sim_to_real_idx``) in ``joint_map``, the root-feature columns in
``root_features``; every reader takes them from there (:func:`manifest_joint_map`,
:func:`validate_manifest`). Format 3 repeated them (top-level ``fps``, ``frames_per_token``,
``sim_joint_names``, ``real_joint_names``, ``sim_to_real_idx``, and inside ``feature_layout``) and older
formats named the robot by a path; they are refused (re-export).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from sim2real.hardware import packaged_robot
from sim2real.joint_map import JointMap
from sim2real.onnx_data import check_no_external_data
from sim2real.robot import RobotDescription
from sim2real.safety import SafetyLimits, check_within_robot, limits_in_force
from sim2real.token_spec import TokenSpec

MANIFEST = "manifest.json"
FORMAT_VERSION = 4
PIN_KEY = "manifest_sha256"
REQUIRED_KEYS = (
    "format_version",
    "token_spec",
    "robot",
    "causal",
    "streaming",
    "joint_map",
    "root_features",
    "position_limits",
    "velocity_limits",
    "acceleration_limits",
    "safety_scale",
    "files",
)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: str | Path) -> dict[str, Any]:
    """``{"sha256": ..., "bytes": ...}`` for the manifest's ``files`` table."""
    return {"sha256": sha256_file(path), "bytes": Path(path).stat().st_size}


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest without ``files``, as canonical JSON (sorted keys, no whitespace, no NaN)."""
    body = {k: v for k, v in manifest.items() if k != "files"}
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError(
            f"{MANIFEST}: non-finite number ({exc}); the manifest was edited, re-export"
        ) from exc
    return hashlib.sha256(text.encode()).hexdigest()


def check_pin(manifest: dict[str, Any], metadata: dict[str, str], source: str) -> None:
    """Refuse a manifest whose content differs from the one the ONNX file ``source`` was exported with."""
    pinned = metadata.get(PIN_KEY)
    if pinned is None:
        raise ValueError(f"{source} has no '{PIN_KEY}' metadata: an export from an older version; re-export")
    if manifest_digest(manifest) != pinned:
        raise ValueError(
            f"{MANIFEST} does not match the '{PIN_KEY}' pinned in {source}: the manifest was edited "
            "(limits, fps, joint names ...); re-copy or re-export (the limits come from the packaged robot "
            "YAML and can only be tightened: --safety-scale, TokenDecoder(..., robot=))"
        )


def load_manifest(export_dir: str | Path, verify: bool = True) -> dict[str, Any]:
    """Read ``export_dir/manifest.json``; with ``verify``, check every listed file's size and sha256."""
    root = Path(export_dir)
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; export a checkpoint first "
            "(scripts/export_onnx.py --checkpoint CKPT --out DIR)"
        )
    try:
        manifest = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-export") from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    _check_format(manifest.get("format_version"), path)
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise KeyError(f"{path}: missing keys {missing}; re-export with this version of motion-vqvae")
    needed = ["decoder.onnx"] + (["decoder_step.onnx"] if manifest["streaming"] else [])
    unlisted = [n for n in needed if n not in manifest["files"]]
    if unlisted:
        raise KeyError(f"{path}: 'files' does not list {unlisted}; the export is incomplete, re-export")
    if verify:
        for name, entry in manifest["files"].items():
            _verify(root, name, entry)
    return manifest


def manifest_robot(manifest: dict[str, Any], source: str) -> RobotDescription:
    """The packaged robot the manifest names (its hardware limits); a path or an unknown name is refused."""
    return packaged_robot(manifest["robot"], source=f"{source}: robot")


def manifest_joint_map(manifest: dict[str, Any], source: str) -> JointMap:
    """The joint order of the export (``joint_map``: simulator and real names, ``sim_to_real_idx``), the
    manifest's one record of it; the real names must be there (the runtime speaks real order)."""
    try:
        jmap = JointMap.from_dict(manifest["joint_map"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{source}: joint_map is not a joint map ({exc}); re-export") from exc
    if not jmap.real_joint_names:
        raise ValueError(f"{source}: joint_map has no real_joint_names (the motor order); re-export")
    return jmap


def validate_manifest(
    manifest: dict[str, Any], robot: RobotDescription, source: str
) -> tuple[SafetyLimits, TokenSpec]:
    """The limits in force and the token structure: the manifest's values checked against each other and
    against ``robot`` (the packaged robot it names), then tightened to that YAML's at ``safety_scale``."""
    spec = TokenSpec.from_dict(manifest["token_spec"], source=f"{source}: token_spec")
    if not (math.isfinite(spec.fps) and spec.fps > 0):
        raise ValueError(f"{source}: token_spec.fps must be a positive number (the training fps); re-export")
    limits = SafetyLimits.from_manifest(manifest, spec.fps, source)
    names = manifest_joint_map(manifest, source).real_joint_names
    if len(names) != limits.dof:
        raise ValueError(
            f"{source}: joint_map.real_joint_names must list the {limits.dof} real joints, got {names!r}"
        )
    check_within_robot(limits, names, robot, source)
    scale = manifest["safety_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ValueError(f"{source}: safety_scale must be a number in (0, 1], got {scale!r}; re-export")
    return limits_in_force(limits, [robot], float(scale), source), spec


def _check_format(version: Any, path: Path) -> None:
    if version == FORMAT_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version < FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version}, this runtime reads {FORMAT_VERSION}: an export from an older "
            "motion-vqvae, which stores the fps and joint order in several places (format 3) or names its "
            "robot by a path on the training machine (format 2); re-export with this version "
            "(scripts/export_onnx.py --checkpoint CKPT --out DIR)"
        )
    raise ValueError(
        f"{path}: format_version {version!r}, this runtime reads {FORMAT_VERSION}; update sim2real "
        "(pip install ./robot_runtime from the motion-vqvae version that made the export)"
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{MANIFEST}: {name} is not a valid limit or value; the manifest was edited, re-export")


def _verify(root: Path, name: str, entry: dict[str, Any]) -> None:
    if Path(name).name != name:
        raise ValueError(f"{root / MANIFEST}: file name {name!r} must be a plain name inside the export")
    file = root / name
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is listed in {MANIFEST} but missing; copy the whole export directory"
        )
    size = file.stat().st_size
    if size != entry["bytes"]:
        raise ValueError(
            f"{file} has {size} bytes, {MANIFEST} says {entry['bytes']}: truncated or replaced; "
            "re-copy or re-export"
        )
    if sha256_file(file) != entry["sha256"]:
        raise ValueError(
            f"{file} does not match the sha256 in {MANIFEST}: the file was modified; re-copy or re-export"
        )
    if file.suffix == ".onnx":  # a tensor in an unlisted side file would escape the hashes above
        check_no_external_data(file)
