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

from sim2real import JointMap
from sim2real.manifest import FORMAT_VERSION, PIN_KEY, manifest_digest, sha256_file
from sim2real.robot import load_robot

if TYPE_CHECKING:
    from motion_vqvae.export.modules import ExportModules

ROLES = {
    "decoder.onnx": "tokens int64 [B, T] (one stream) or [B, T, S] (token_spec streams) -> joint_targets "
    "[B, T*fpt, real_dof] (real order, rad, clamped), root_features [B, T*fpt, R] (de-normalized)",
    "decoder_step.onnx": "token int64 [B] (one stream) or [B, S] + state_in_* -> joint_targets "
    "[B, fpt, real_dof], root_features [B, fpt, R], state_out_* (feed back as state_in_*; zeros = start "
    "of a sequence)",
    "encoder.onnx": "features float32 [B, T*fpt, F] (normalized) -> tokens int64 [B, T] or [B, T, S]",
    "prior_start.onnx": "text float32 [B, E], has_text float32 [B] -> hidden [B, D], keys, values "
    "[L, B, H, 1, hd] (the prior's condition slot; D = n_embd + S: the state and the last step's ids)",
    "prior_step.onnx": "tokens int64 [B, T, S], positions int64 [T], past_keys, past_values [L, B, H, P, hd] "
    "-> hidden [B, T, D], logits [B, T, V] (next token, first stream), keys, values [L, B, H, P+T, hd]",
    "prior_head.onnx": "hidden [B, D], next_tokens int64 [B, S] -> logits [B, S, V] (stream s uses the "
    "next step's streams < s)",
    "tracker.onnx": "obs float32 [B, 5N+9] (sim2real.tracker_obs) -> actions float32 [B, N]; PD targets = "
    "offset + action_scale * actions (metadata 'tracker')",
}

# Facts copied into each ONNX file's metadata_props (values JSON-encoded unless already strings), so one
# .onnx file still says what it is; the manifest holds each of them once.
_METADATA_KEYS = ("format_version", "token_spec", "causal", "root_features", "opset")


def build_manifest(
    modules: ExportModules, checkpoint: Path, files: list[str], parity: dict[str, Any], opset: int
) -> dict[str, Any]:
    """Manifest without the ``files`` table (hashes are taken after the ONNX metadata is written).

    Each fact is stored once (format 4): the fps, frames per token and vocabulary in ``token_spec``, the
    joint order in ``joint_map``, the root-feature columns in ``root_features`` (the feature layout keeps
    its width, tilt form and normalization only). The limits are the ones the robot's safety filter enforces
    (``ExportModules.limits``, after ``safety_scale``); ``exporter`` records how the ONNX files were made
    (see :func:`motion_vqvae.export.graph.export_graph`).
    """
    tok, jmap = modules.tokenizer, modules.joint_map
    model, layout = tok.model, tok.layout
    if not jmap.sim_joint_names and layout.joint_names:  # the layout's names are the simulator order
        jmap = JointMap.from_dict({**jmap.to_dict(), "sim_joint_names": layout.joint_names})
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "checkpoint_sha256": sha256_file(checkpoint),
        "iteration": tok.iteration,
        "robot": modules.robot.name,  # a packaged robot's name: its YAML holds the hardware limits
        "token_spec": modules.token_spec.to_dict(),
        "code_dim": model.quantizer.code_dim,
        "causal": model.causal,
        "streaming": "decoder_step.onnx" in files,
        "model_hparams": {k: v for k, v in model.hparams().items() if k != "fps"},
        "feature_layout": {
            "num_dof": layout.num_dof,
            "prefer_expmap": layout.prefer_expmap,
            "dim": layout.dim,
            "normalizer": layout.normalizer.to_dict(),
        },
        "root_features": layout.root_slices(),
        "joint_map": jmap.to_dict(),
        **modules.limits.to_manifest(),
        "safety_scale": modules.safety_scale,
        "opset": opset,
        **pd_gains(tok.config.robot, jmap.real_joint_names),
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
    """String metadata for one ONNX file of the export, including the manifest's digest (the pin); the
    fps, vocabulary and real joint order are copied from the manifest's one record of each."""
    jmap = manifest["joint_map"]
    facts = {
        **{k: v for k, v in manifest.items() if k in _METADATA_KEYS},
        **{k: manifest["token_spec"][k] for k in ("fps", "frames_per_token", "nb_code")},
        "real_dof": jmap["real_dof"],
        "real_joint_names": jmap["real_joint_names"],
    }
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in facts.items()}
    props.update(producer="motion-vqvae", role=name, description=ROLES[name])
    props[PIN_KEY] = manifest_digest(manifest)
    return props
