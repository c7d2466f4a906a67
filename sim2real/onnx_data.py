"""Refuse ONNX files whose tensors live in external files: their bytes would escape the manifest's hashes.

ONNX lets an initializer (or a constant attribute) keep its values in another file next to the model
(``external_data`` / ``data_location: EXTERNAL``). onnxruntime reads that file when the session opens, so
an export whose ``decoder.onnx`` is hashed but whose ``weights.bin`` is not could be altered and still
load, decoding different motion. Our exporter writes every tensor inline; a file that does not is refused.

This reads the protobuf wire format directly (numpy, onnxruntime and pyyaml are the robot side's only
dependencies; the ``onnx`` package is not one of them). Only the messages that can hold a tensor are
walked: model -> graph / functions / training info -> nodes -> attributes -> tensors and subgraphs.
"""

from __future__ import annotations

from pathlib import Path

# field numbers from onnx.proto: {message: {field: message type of that field}}
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 13, 14, 1
_MAX_DEPTH = 64  # nested subgraphs (If/Loop bodies); deeper is a crafted file


class ExternalDataError(ValueError):
    """An ONNX file keeps tensor values outside itself, or is not a readable ONNX protobuf."""


def check_no_external_data(path: str | Path) -> None:
    """Raise :class:`ExternalDataError` if any tensor of the ONNX file at ``path`` uses external data."""
    path = Path(path)
    data = path.read_bytes()
    try:
        external = _walk(data, "model", 0)
    except (IndexError, ValueError) as exc:
        raise ExternalDataError(f"{path} is not a valid ONNX file ({exc}); re-export") from None
    if external:
        raise ExternalDataError(
            f"{path}: tensor(s) stored in external data files, which the manifest does not hash; refused. "
            "Re-export with every tensor inside the .onnx file (scripts/export_onnx.py does)"
        )


def _walk(data: bytes | memoryview, kind: str, depth: int) -> bool:
    """True if this message (of ``kind``) or one inside it is a tensor with external data."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"messages nested deeper than {_MAX_DEPTH}")
    view, pos, children = memoryview(data), 0, _CHILDREN[kind]
    while pos < len(view):
        key, pos = _varint(view, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(view, pos)
            if kind == "tensor" and field == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
                return True
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(view, pos)
            end = pos + size
            if end > len(view):
                raise ValueError("a field runs past the end of the file")
            if kind == "tensor" and field == _TENSOR_EXTERNAL_DATA:
                return True
            if field in children and _walk(view[pos:end], children[field], depth + 1):
                return True
            pos = end
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != len(view):
        raise ValueError("a field runs past the end of its message")
    return False


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")
