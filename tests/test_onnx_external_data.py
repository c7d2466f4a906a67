"""An ONNX tensor kept in a side file (``weights.bin``) would escape the manifest's hashes: it is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sim2real.manifest import FORMAT_VERSION, MANIFEST, REQUIRED_KEYS, file_entry, load_manifest
from sim2real.onnx_data import ExternalDataError, check_no_external_data

REPO = Path(__file__).resolve().parents[1]


def _model(external: bool, path: Path) -> Path:
    """A one-MatMul graph whose weight is inline, or in ``weights.bin`` beside it."""
    weight = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "W")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, path, save_as_external_data=external, location="weights.bin", size_threshold=0)
    return path


def test_inline_tensors_pass_and_external_ones_are_refused(tmp_path: Path) -> None:
    check_no_external_data(_model(False, tmp_path / "inline.onnx"))
    (tmp_path / "ext").mkdir()
    external = _model(True, tmp_path / "ext" / "decoder.onnx")
    assert (tmp_path / "ext" / "weights.bin").is_file()
    with pytest.raises(ExternalDataError, match="external data files, which the manifest does not hash"):
        check_no_external_data(external)


def test_truncated_onnx_is_refused_not_crashed(tmp_path: Path) -> None:
    path = _model(False, tmp_path / "m.onnx")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ExternalDataError, match="not a valid ONNX file"):
        check_no_external_data(path)


def test_an_export_whose_decoder_uses_a_side_file_is_refused_on_load(tmp_path: Path) -> None:
    decoder = _model(True, tmp_path / "decoder.onnx")
    manifest = {key: None for key in REQUIRED_KEYS}
    manifest.update(
        format_version=FORMAT_VERSION, streaming=False, files={"decoder.onnx": file_entry(decoder)}
    )
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExternalDataError, match="decoder.onnx"):
        load_manifest(tmp_path)


def test_the_check_needs_no_onnx_package() -> None:
    code = (
        "import sys, sim2real.onnx_data, sim2real.manifest; assert 'onnx' not in sys.modules, 'onnx imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
