"""One torch module -> one self-contained ONNX file, the way every graph of an export is written.

The tokenizer's graphs (:mod:`motion_vqvae.export.onnx_export`) and the prior's
(:mod:`motion_vqvae.prior.export`) and the tracker's (:mod:`motion_vqvae.tracking.export`)
are written by this one function, so they share the exporter, the opset
and the refusal of external data files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from sim2real.onnx_data import check_no_external_data

OPSET = 17


def export_graph(
    module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict
) -> None:
    """Trace ``module`` on ``args`` into ``path`` (TorchScript exporter, :data:`OPSET`, ``axes`` dynamic)."""
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
