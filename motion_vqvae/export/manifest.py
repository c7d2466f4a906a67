"""``manifest.json`` and the ONNX ``metadata_props``: everything a robot needs to use an export correctly.

The manifest is plain JSON that :mod:`sim2real` reads with the standard library; the key facts are also
copied into each ONNX file's metadata, so a single ``.onnx`` file still says what it is and how to feed it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim2real.manifest import FORMAT_VERSION

if TYPE_CHECKING:
    from motion_vqvae.export.onnx_export import ExportModules

ROLES = {
    "decoder.onnx": "tokens int64 [B, T] (one stream) or [B, T, S] (token_spec streams) -> joint_targets "
    "[B, T*fpt, real_dof] (real order, rad, clamped), root_features [B, T*fpt, R] (de-normalized)",
    "decoder_step.onnx": "token int64 [B] (one stream) or [B, S] + state_in_* -> joint_targets "
    "[B, fpt, real_dof], root_features [B, fpt, R], state_out_* (feed back as state_in_*; zeros = start "
    "of a sequence)",
    "encoder.onnx": "features float32 [B, T*fpt, F] (normalized) -> tokens int64 [B, T] or [B, T, S]",
    "prior_start.onnx": "text float32 [B, E], has_text float32 [B] -> hidden [B, D], keys, values "
    "[L, B, H, 1, hd] (the prior's condition slot)",
    "prior_step.onnx": "tokens int64 [B, T, S], positions int64 [T], past_keys, past_values [L, B, H, P, hd] "
    "-> hidden [B, T, D], logits [B, T, V] (next token, first stream), keys, values [L, B, H, P+T, hd]",
    "prior_head.onnx": "hidden [B, D], next_tokens int64 [B, S] -> logits [B, S, V] (stream s uses the "
    "next step's streams < s)",
}

# Keys copied into each ONNX file's metadata_props (values JSON-encoded unless already strings).
_METADATA_KEYS = (
    "format_version",
    "fps",
    "frames_per_token",
    "nb_code",
    "token_spec",
    "causal",
    "real_dof",
    "real_joint_names",
    "root_features",
    "opset",
)


def build_manifest(
    modules: ExportModules, checkpoint: Path, files: list[str], parity: dict[str, Any], opset: int
) -> dict[str, Any]:
    """Manifest without the ``files`` table (hashes are taken after the ONNX metadata is written)."""
    agent, jmap = modules.agent, modules.joint_map
    model, layout = agent.model, agent.layout
    root_slices = {k: [s.start, s.stop] for k, s in layout.slices.items() if s.stop <= modules.head.root_dim}
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": str(checkpoint.resolve()),
        "iteration": agent.iteration,
        "robot": agent.cfg.robot,
        "fps": float(agent.cfg.target_fps or 30.0),
        "frames_per_token": model.frames_per_token,
        "nb_code": model.quantizer.nb_code,
        "code_dim": model.quantizer.code_dim,
        "token_spec": model.token_spec.to_dict(),
        "causal": model.causal,
        "streaming": "decoder_step.onnx" in files,
        "model_hparams": model.hparams(),
        "feature_layout": layout.to_dict(),
        "normalization": layout.normalizer.to_dict(),
        "root_features": root_slices,
        "sim_joint_names": jmap.sim_joint_names or layout.joint_names,
        "real_joint_names": jmap.real_joint_names,
        "real_dof": jmap.real_dof,
        "sim_to_real_idx": jmap.sim_to_real_idx.tolist(),
        "joint_map": jmap.to_dict(),
        "position_limits": {"lower": modules.lower.tolist(), "upper": modules.upper.tolist()},
        "velocity_limits": modules.velocity.tolist(),
        "opset": opset,
        "roles": {name: ROLES[name] for name in files if name in ROLES},
        "parity": parity,
    }
    if modules.step is not None:
        manifest["step_state"] = [
            {"input": f"state_in_{i}", "output": f"state_out_{i}", "shape": ["batch", k, c]}
            for i, (k, c) in enumerate(modules.step.streaming.state_shapes)
        ]
    return manifest


def onnx_metadata(manifest: dict[str, Any], name: str) -> dict[str, str]:
    """String metadata for one ONNX file of the export."""
    props = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in manifest.items() if k in _METADATA_KEYS
    }
    props.update(
        producer="motion-vqvae", role=name, description=ROLES[name], checkpoint=manifest["checkpoint"]
    )
    return props
