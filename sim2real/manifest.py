"""The export manifest: what an export directory holds, read and verified before anything is run.

``manifest.json`` lists every file of the export with its size and sha256; :func:`load_manifest` refuses a
directory where a listed file is missing, truncated or altered, so a robot never runs a half-copied or
tampered decoder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format_version",
    "fps",
    "frames_per_token",
    "nb_code",
    "causal",
    "streaming",
    "real_joint_names",
    "sim_joint_names",
    "sim_to_real_idx",
    "position_limits",
    "velocity_limits",
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
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-export") from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise KeyError(f"{path}: missing keys {missing}; re-export with this version of motion-vqvae")
    if manifest["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {manifest['format_version']} is newer than this runtime "
            f"({FORMAT_VERSION}); update sim2real"
        )
    needed = ["decoder.onnx", "codebook.npy"] + (["decoder_step.onnx"] if manifest["streaming"] else [])
    unlisted = [n for n in needed if n not in manifest["files"]]
    if unlisted:
        raise KeyError(f"{path}: 'files' does not list {unlisted}; the export is incomplete, re-export")
    if verify:
        for name, entry in manifest["files"].items():
            _verify(root, name, entry)
    return manifest


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
