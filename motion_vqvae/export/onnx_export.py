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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from motion_vqvae.errors import InvalidValue
from motion_vqvae.export.extras import ExportExtra
from motion_vqvae.export.graph import OPSET, export_graph
from motion_vqvae.export.manifest import build_manifest, onnx_metadata
from motion_vqvae.export.modules import ExportModules
from motion_vqvae.export.parity import check_parity
from motion_vqvae.export.source import ExportSource
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
from sim2real.manifest import MANIFEST, file_entry, manifest_robot, validate_manifest

log = logging.getLogger(__name__)


def export_checkpoint(
    tokenizer: ExportSource,
    out: str | Path,
    *,
    motion_file: str | Path | None = None,
    overwrite: bool = False,
    safety_scale: float = 1.0,
    extras: Sequence[ExportExtra] = (),
) -> dict[str, Any]:
    """Export ``tokenizer`` (a loaded checkpoint, :meth:`Tokenizer.load <motion_vqvae.Tokenizer.load>`)
    to the directory ``out``, with the sections ``extras`` add (a prior trained on its tokens,
    :func:`motion_vqvae.prior.export.prior_extra`; a physics tracker,
    :func:`motion_vqvae.tracking.export.tracker_extra`); returns the manifest.

    ``safety_scale`` in (0, 1] scales the robot YAML's velocity and acceleration limits down (to loosen
    them, edit the YAML's ``safety`` section instead).

    ``motion_file`` gives the real clips for the parity checks (default: the checkpoint's ``motion_file``,
    else the bundled sample). Raises :class:`~motion_vqvae.export.parity.ParityError` (nothing written at
    ``out``) when onnxruntime disagrees with torch beyond the tolerances.
    """
    if isinstance(tokenizer, (str, Path)):
        raise TypeError(
            f"export_checkpoint takes a loaded tokenizer, not the path {str(tokenizer)!r}: pass "
            "motion_vqvae.Tokenizer.load(path) (or run scripts/export_onnx.py --checkpoint PATH)"
        )
    if tokenizer.path is None or tokenizer.sha256 is None:
        raise InvalidValue(
            "export: this tokenizer was not loaded from a checkpoint file (a training run's in-memory "
            "model); the manifest pins the checkpoint by its sha256: save it and export "
            "Tokenizer.load(path)"
        )
    options = {"motion_file": motion_file, "overwrite": overwrite, "safety_scale": safety_scale}
    return export_checkpoint_file(tokenizer.path, out, lambda _: tokenizer, extras=extras, **options)


def export_checkpoint_file(
    checkpoint: str | Path,
    out: str | Path,
    load: Callable[[Path], ExportSource],
    *,
    motion_file: str | Path | None = None,
    overwrite: bool = False,
    safety_scale: float = 1.0,
    extras: Sequence[ExportExtra] = (),
) -> dict[str, Any]:
    """:func:`export_checkpoint` of the checkpoint file ``checkpoint``, read by ``load``
    (``Tokenizer.load``) only once ``out`` is checked and claimed: a wrong or busy ``--out`` is reported
    as such even when the checkpoint is unreadable, and nothing is read for an export that cannot be
    written. (The entry point passes the loader, so this module needs no run-time import of the
    tokenizer, which delegates its own ``export`` here.)"""
    out, checkpoint = Path(out), Path(checkpoint)
    check_apart(
        out,
        {
            "the checkpoint's run": run_of(checkpoint),
            **{f"the {extra.section}'s run": run_of(extra.source) for extra in extras},
            **({} if motion_file is None else motion_inputs(motion_file)),
        },
    )
    with environment_errors(out), claim(out):
        clean_stale_temps(out)
        check_replaceable(out, overwrite, export_files, "an export", MANIFEST)
        modules = ExportModules.from_tokenizer(load(checkpoint), safety_scale)
        tmp = temp_sibling(out, "tmp")
        tmp.mkdir()
        try:
            manifest = _write_export(modules, checkpoint, tmp, out, motion_file, extras)
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
    extras: Sequence[ExportExtra],
) -> dict[str, Any]:
    """Every file of the export and its manifest into ``tmp``; returns the manifest."""
    files = _write_files(modules, tmp)
    parity = check_parity(modules, tmp, motion_file)
    manifest = build_manifest(modules, checkpoint, files, parity, OPSET)
    source = str(out / MANIFEST)
    validate_manifest(manifest, manifest_robot(manifest, source), source)
    props: dict[str, dict[str, str]] = {}
    for extra in extras:
        manifest[extra.section] = section = extra.write(checkpoint, tmp)
        files = [*files, *section["files"]]
        props.update(extra.onnx_props(section) if extra.onnx_props else {})
    for name in files:
        if name.endswith(".onnx"):
            _add_metadata(tmp / name, {**onnx_metadata(manifest, name), **props.get(name, {})})
    manifest["files"] = {name: file_entry(tmp / name) for name in files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_files(modules: ExportModules, root: Path) -> list[str]:
    model = modules.tokenizer.model
    fpt, dim = model.frames_per_token, model.in_dim
    streams = () if model.token_spec.is_single else (model.token_spec.num_streams,)
    tokens = torch.zeros(1, 3, *streams, dtype=torch.long)
    export_graph(
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
    export_graph(
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
        export_graph(
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


def _add_metadata(path: Path, props: dict[str, str]) -> None:
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, props)
    model.doc_string = props.get("description", "")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


__all__ = ["export_checkpoint", "export_checkpoint_file", "export_files"]
