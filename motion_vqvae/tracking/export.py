"""Export a tracker checkpoint to ``tracker.onnx``, which describes itself (``sim2real.TrackerPolicy``).

The graph is the deterministic policy: ``obs float32 [B, 5 N + 9]`` (the layout of
:mod:`sim2real.tracker_obs`, normalisation inside the graph) -> ``actions float32 [B, N]``. Its
``metadata_props`` carry what the robot needs to turn actions into PD targets and to build the observation:
joint names (simulator order), default pose, action scale, action offset, control rate and the servo gains
the tracker was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import torch

from motion_vqvae.export.extras import ExportExtra
from motion_vqvae.export.graph import export_graph
from motion_vqvae.tracking.gains import armature_gains, joint_armature
from motion_vqvae.tracking.report import load_tracker
from motion_vqvae.training.checkpoint import load_checkpoint
from sim2real.manifest import sha256_file
from sim2real.tracker_obs import OBSERVATION_LAYOUT

TRACKER_FILE = "tracker.onnx"


def tracker_metadata(path: str | Path) -> dict[str, Any]:
    """The facts of a tracker checkpoint that the robot side needs (JSON-ready)."""
    state = load_checkpoint(path)
    names = list(state["joint_names"])
    kp, kd = armature_gains(joint_armature(names))
    return {
        "observation_layout": OBSERVATION_LAYOUT,
        "obs_size": int(state["obs_size"]),
        "joint_names": names,
        "default_dof": [float(x) for x in state["default_dof"]],
        "action_scale": [float(x) for x in state["action_scale"]],
        "action_offset": state["config"]["action_offset"],
        "control_fps": float(state["config"]["control_fps"]),
        "kp": kp.tolist(),
        "kd": kd.tolist(),
        "checkpoint_sha256": sha256_file(path),
    }


def export_tracker(path: str | Path, root: str | Path) -> dict[str, Any]:
    """Write ``root/tracker.onnx`` with its metadata; returns the manifest's ``tracker`` section."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    model, _ = load_tracker(path)
    meta = tracker_metadata(path)
    target = root / TRACKER_FILE
    export_graph(
        model, (torch.zeros(1, meta["obs_size"]),), target, ["obs"], ["actions"],
        {"obs": {0: "batch"}, "actions": {0: "batch"}},
    )  # fmt: skip
    graph = onnx.load(str(target))
    onnx.helper.set_model_props(
        graph, {"producer": "motion-vqvae", "role": "tracker", "tracker": json.dumps(meta)}
    )
    onnx.save(graph, str(target))
    return {**meta, "files": [TRACKER_FILE]}


def tracker_extra(path: str | Path) -> ExportExtra:
    """The tracker's section of a tokenizer export (``export_checkpoint(..., extras=[tracker_extra(p)])``):
    ``tracker.onnx`` carries its facts in its metadata too, which is what ``sim2real.TrackerPolicy`` reads."""
    return ExportExtra(
        "tracker",
        Path(path),
        lambda _tokenizer, root: export_tracker(path, root),
        lambda section: {
            TRACKER_FILE: {"tracker": json.dumps({k: v for k, v in section.items() if k != "files"})}
        },
    )
