"""``manifest.json`` and the ONNX ``metadata_props``: everything a robot needs to use an export correctly.

The manifest is plain JSON that :mod:`sim2real` reads with the standard library; the key facts are also
copied into each ONNX file's metadata, so a single ``.onnx`` file still says what it is and how to feed it,
together with the manifest's own digest (``manifest_sha256``), which pins the manifest to the hashed files.
Nothing machine- or time-dependent is written (no paths, no timestamps; the checkpoint by its sha256, the
robot by the name of the packaged robot it is or restricts), so two exports of one checkpoint are
byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim2real.manifest import FORMAT_VERSION, PIN_KEY, manifest_digest, sha256_file
from sim2real.robot import load_robot

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
    "tracker.onnx": "obs float32 [B, 5N+9] (sim2real.tracker_obs) -> actions float32 [B, N]; PD targets = "
    "offset + action_scale * actions (metadata 'tracker')",
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
    """Manifest without the ``files`` table (hashes are taken after the ONNX metadata is written).

    The limits are the ones the robot's safety filter enforces (``ExportModules.limits``, after
    ``safety_scale``); ``exporter`` records how the ONNX files were made (see ``onnx_export._export``).
    """
    agent, jmap = modules.agent, modules.joint_map
    model, layout = agent.model, agent.layout
    root_slices = {k: [s.start, s.stop] for k, s in layout.slices.items() if s.stop <= modules.head.root_dim}
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "checkpoint_sha256": sha256_file(checkpoint),
        "iteration": agent.iteration,
        "robot": modules.robot.name,  # a packaged robot's name: its YAML holds the hardware limits
        "fps": modules.token_spec.fps,
        "frames_per_token": model.frames_per_token,
        "nb_code": model.quantizer.nb_code,
        "token_spec": modules.token_spec.to_dict(),
        "code_dim": model.quantizer.code_dim,
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
        **modules.limits.to_manifest(),
        "safety_scale": modules.safety_scale,
        "opset": opset,
        **pd_gains(agent.cfg.robot, jmap.real_joint_names),
        "exporter": "torch.onnx TorchScript (dynamo=False)",
        "roles": {name: ROLES[name] for name in files if name in ROLES},
        "parity": parity,
    }
    if modules.step is not None:
        manifest["step_state"] = [
            {"input": f"state_in_{i}", "output": f"state_out_{i}", "shape": ["batch", k, c]}
            for i, (k, c) in enumerate(modules.step.streaming.state_shapes)
        ]
    return manifest


def pd_gains(robot: str, real_joint_names: list[str] | None) -> dict[str, list[float]]:
    """``kp``/``kd`` per real joint from the robot YAML, for the robot's PD control loop."""
    desc = load_robot(robot)
    kp, kd = desc.real_gains(real_joint_names or list(desc.real_joint_names))
    return {"kp": kp.tolist(), "kd": kd.tolist()}


def onnx_metadata(manifest: dict[str, Any], name: str) -> dict[str, str]:
    """String metadata for one ONNX file of the export, including the manifest's digest (the pin)."""
    props = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in manifest.items() if k in _METADATA_KEYS
    }
    props.update(producer="motion-vqvae", role=name, description=ROLES[name])
    props[PIN_KEY] = manifest_digest(manifest)
    return props
