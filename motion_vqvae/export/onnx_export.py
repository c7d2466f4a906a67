"""Checkpoint -> export directory: ``decoder.onnx``, ``decoder_step.onnx`` (causal), ``encoder.onnx``,
``codebook.npy`` and ``manifest.json``, checked against torch before it appears under its final name.

Everything is written into a temp directory beside the target (``.NAME.tmp-PID``, removed by the next
export once that PID is dead) and renamed at the end, so a failed parity check or a crash never leaves a
partial export where a robot could pick it up. The shared rules of :mod:`motion_vqvae.outputs` apply: an
``--out`` apart from the checkpoint's run and the clips, one export at a time per folder, and
``--overwrite`` replacing an export only (a folder holding nothing but a manifest and its files).

Every ONNX file passes ``onnx.checker.check_model(full_check=True)``; the manifest is checked against the
robot YAML as the runtime will check it, so an export the robot would refuse is never written. The training
config's ``robot`` may be a YAML path only if it restricts a packaged robot
(:func:`sim2real.hardware.resolve_robot`); the manifest names that robot.

Exporter: the TorchScript one (``torch.onnx.export(dynamo=False)``). Measured against dynamo (torch 2.13,
onnxscript 0.7.2, ``dynamic_shapes`` with ``Dim.AUTO``) on the tiny test model and the default model
(width 128, 384 codes, g1_moves): identical parity figures for both exporters (token ids identical;
joint targets vs torch 4.8e-7 / 1.2e-6 rad; 200 streaming steps vs the sequence decoder 4.8e-7 / 1.3e-6),
but dynamo took 60-66 s per export instead of 2.6-5.4 s, specialised the batch axis of the outputs to the
example's 1 (onnxruntime warns on batch 32), and needs ``onnxscript``, which is not a dependency.
Figures in ``benchmarks/runtime.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.errors import user_input
from motion_vqvae.export.manifest import build_manifest, onnx_metadata
from motion_vqvae.export.parity import ParityError, check_parity
from motion_vqvae.export.streaming import StreamingDecoder
from motion_vqvae.export.targets import JointTargetHead, real_limits
from motion_vqvae.models.vqvae import VQVAE
from motion_vqvae.outputs import (
    check_apart,
    check_replaceable,
    claim,
    clean_stale_temps,
    environment_errors,
    motion_inputs,
    publish,
    run_of,
    temp_sibling,
)
from sim2real import JointMap, RobotDescription, SafetyLimits, TokenSpec
from sim2real.hardware import resolve_robot
from sim2real.manifest import MANIFEST, file_entry, manifest_robot, validate_manifest
from sim2real.onnx_data import check_no_external_data
from sim2real.safety import limits_for_robot

log = logging.getLogger(__name__)

OPSET = 17


class SequenceDecoder(nn.Module):
    """``decoder.onnx``: tokens int64 ``[B, T]`` (one stream) or ``[B, T, S]`` -> (targets
    ``[B, T*fpt, dof]``, root ``[B, T*fpt, R]``)."""

    def __init__(self, model: VQVAE, head: JointTargetHead) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # model.decode's range check reads values into Python: fine eagerly, a baked constant when traced.
        features = self.model.decoder(self.model.quantizer.dequantize(tokens)).transpose(
            1, 2
        )  # (B, T*fpt, F)
        return self.head(features)


class StepDecoder(nn.Module):
    """``decoder_step.onnx``: (tokens ``[B]`` or ``[B, S]``, *state) -> (targets ``[B, fpt, dof]``, root,
    *new_state)."""

    def __init__(self, streaming: StreamingDecoder, head: JointTargetHead) -> None:
        super().__init__()
        self.streaming, self.head = streaming, head

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames, *new_state = self.streaming(tokens, *state)
        return (*self.head(frames), *new_state)


class TokenEncoder(nn.Module):
    """``encoder.onnx``: normalized frames ``[B, T*fpt, F]`` -> token ids int64 ``[B, T]``/``[B, T, S]``."""

    def __init__(self, model: VQVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.quantizer.lookup(self.model.encoder(frames.transpose(1, 2)))


@dataclass
class ExportModules:
    """The torch modules behind each ONNX file, built from one checkpoint (also used by the parity checks)."""

    agent: MVQVAEAgent
    robot: RobotDescription  # the training config's robot: a packaged one, or a file restricting one
    joint_map: JointMap
    token_spec: TokenSpec
    limits: SafetyLimits  # what the robot's safety filter enforces (real order), after safety_scale
    safety_scale: float
    head: JointTargetHead
    decoder: SequenceDecoder
    encoder: TokenEncoder
    step: StepDecoder | None  # None for a non-causal model

    @classmethod
    def from_agent(cls, agent: MVQVAEAgent, safety_scale: float = 1.0) -> ExportModules:
        """Modules for ``agent``; the decoders clamp to the filter's position limits already."""
        model, layout = agent.model.cpu().eval(), agent.layout
        joint_map = agent.joint_map or JointMap.identity(layout.num_dof, layout.joint_names)
        with user_input():  # sim2real refuses a robot file that widens the packaged robot with builtins
            robot = resolve_robot(agent.cfg.robot)
        spec = model.token_spec  # the checkpoint's token structure, fps included
        limits = limits_for_robot(real_limits(robot, joint_map), robot.safety, spec.fps, safety_scale)
        head = JointTargetHead(layout, joint_map, limits.lower, limits.upper).eval()
        step = StepDecoder(StreamingDecoder(model), head).eval() if model.causal else None
        return cls(
            agent,
            robot,
            joint_map,
            spec,
            limits,
            safety_scale,
            head,
            SequenceDecoder(model, head),
            TokenEncoder(model),
            step,
        )


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    motion_file: str | Path | None = None,
    overwrite: bool = False,
    safety_scale: float = 1.0,
    prior: str | Path | None = None,
    tracker: str | Path | None = None,
) -> dict[str, Any]:
    """Export ``checkpoint`` (and a ``prior`` trained on its tokens, and a physics ``tracker``) to the
    directory ``out``; returns the manifest.

    ``safety_scale`` in (0, 1] scales the robot YAML's velocity and acceleration limits down (to loosen
    them, edit the YAML's ``safety`` section instead).

    ``motion_file`` gives the real clips for the parity checks (default: the checkpoint's ``motion_file``,
    else the bundled sample). Raises :class:`ParityError` (nothing written at ``out``) when onnxruntime
    disagrees with torch beyond the tolerances.
    """
    out, checkpoint = Path(out), Path(checkpoint)
    check_apart(
        out,
        {
            "the checkpoint's run": run_of(checkpoint),
            "the prior's run": None if prior is None else run_of(prior),
            **({} if motion_file is None else motion_inputs(motion_file)),
        },
    )
    with environment_errors(out), claim(out):
        clean_stale_temps(out)
        check_replaceable(out, overwrite, export_files, "an export", MANIFEST)
        agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
        modules = ExportModules.from_agent(agent, safety_scale)
        tmp = temp_sibling(out, "tmp")
        tmp.mkdir()
        try:
            manifest = _write_export(modules, checkpoint, tmp, out, motion_file, prior, tracker)
            check_replaceable(out, overwrite, export_files, "an export", MANIFEST)  # unchanged meanwhile?
            publish(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("exported %s -> %s (%s)", checkpoint, out, ", ".join(manifest["files"]))
    return manifest


def export_files(folder: Path) -> set[str] | None:
    """The entries an export writes into ``folder`` (its manifest and the files it lists); None: no export."""
    try:
        files = json.loads((folder / MANIFEST).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return {MANIFEST, *files} if isinstance(files, dict) else None


def _write_export(
    modules: ExportModules,
    checkpoint: Path,
    tmp: Path,
    out: Path,
    motion_file: str | Path | None,
    prior: str | Path | None,
    tracker: str | Path | None = None,
) -> dict[str, Any]:
    """Every file of the export and its manifest into ``tmp``; returns the manifest."""
    files = _write_files(modules, tmp)
    parity = check_parity(modules, tmp, motion_file)
    manifest = build_manifest(modules, checkpoint, files, parity, OPSET)
    source = str(out / MANIFEST)
    validate_manifest(manifest, manifest_robot(manifest, source), source)
    if prior is not None:
        from motion_vqvae.prior.export import export_prior  # the prior module builds on this one

        manifest["prior"] = export_prior(prior, checkpoint, tmp)
        files = [*files, *manifest["prior"]["files"]]
    extra: dict[str, dict[str, str]] = {}
    if tracker is not None:
        from motion_vqvae.tracking.export import TRACKER_FILE, export_tracker

        manifest["tracker"] = export_tracker(tracker, tmp)
        files = [*files, *manifest["tracker"]["files"]]
        meta = {k: v for k, v in manifest["tracker"].items() if k != "files"}
        extra[TRACKER_FILE] = {"tracker": json.dumps(meta)}  # what sim2real.TrackerPolicy reads
    for name in files:
        if name.endswith(".onnx"):
            _add_metadata(tmp / name, {**onnx_metadata(manifest, name), **extra.get(name, {})})
    manifest["files"] = {name: file_entry(tmp / name) for name in files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_files(modules: ExportModules, root: Path) -> list[str]:
    model = modules.agent.model
    fpt, dim = model.frames_per_token, model.in_dim
    streams = () if model.token_spec.is_single else (model.token_spec.num_streams,)
    tokens = torch.zeros(1, 3, *streams, dtype=torch.long)
    _export(
        modules.decoder,
        (tokens,),
        root / "decoder.onnx",
        ["tokens"],
        ["joint_targets", "root_features"],
        {
            "tokens": {0: "batch", 1: "tokens"},
            "joint_targets": {0: "batch", 1: "frames"},
            "root_features": {0: "batch", 1: "frames"},
        },
    )
    frames = torch.zeros(1, 3 * fpt, dim)
    _export(
        modules.encoder,
        (frames,),
        root / "encoder.onnx",
        ["features"],
        ["tokens"],
        {"features": {0: "batch", 1: "frames"}, "tokens": {0: "batch", 1: "tokens"}},
    )
    names = ["decoder.onnx", "encoder.onnx"]
    if modules.step is not None:
        state = modules.step.streaming.init_state(1, "cpu")
        state_in = [f"state_in_{i}" for i in range(len(state))]
        state_out = [f"state_out_{i}" for i in range(len(state))]
        _export(
            modules.step,
            (torch.zeros(1, *streams, dtype=torch.long), *state),
            root / "decoder_step.onnx",
            ["token", *state_in],
            ["joint_targets", "root_features", *state_out],
            {n: {0: "batch"} for n in ["token", *state_in, "joint_targets", "root_features", *state_out]},
        )
        names.append("decoder_step.onnx")
    np.save(root / "codebook.npy", model.quantizer.codebook.cpu().numpy().astype(np.float32))
    return [*names, "codebook.npy"]


def _export(
    module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict
) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter's deprecation and constant-folding notes say nothing about this graph.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks, constant here
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    check_no_external_data(path)  # the manifest hashes this file alone; the runtime refuses side files too


def _add_metadata(path: Path, props: dict[str, str]) -> None:
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, props)
    model.doc_string = props.get("description", "")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


__all__ = ["OPSET", "ExportModules", "ParityError", "export_checkpoint"]
