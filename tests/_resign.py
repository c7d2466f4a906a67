"""What a hostile editor of an export does after changing it: recompute the manifest's pin in every ONNX
file and every file's hash, so only the runtime's own checks (not the integrity checks) can refuse it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from sim2real.manifest import MANIFEST, PIN_KEY, file_entry, manifest_digest


def resign(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` into the export ``root`` with a recomputed pin and files table."""
    digest = manifest_digest(manifest)
    for name in manifest["files"]:
        if name.endswith(".onnx"):
            model = onnx.load(str(root / name))
            props = {p.key: p.value for p in model.metadata_props}
            onnx.helper.set_model_props(model, {**props, PIN_KEY: digest})
            onnx.save(model, str(root / name))
    manifest["files"] = {name: file_entry(root / name) for name in manifest["files"]}
    (root / MANIFEST).write_text(json.dumps(manifest))
