"""ONNX export of trained tokenizers (and of a prior trained on their tokens) and the torch streaming
decoder shared with token-space RL."""

from motion_vqvae.export.graph import OPSET
from motion_vqvae.export.modules import ExportModules
from motion_vqvae.export.onnx_export import export_checkpoint, export_checkpoint_file
from motion_vqvae.export.parity import ParityError
from motion_vqvae.export.streaming import StreamingDecoder
from motion_vqvae.export.targets import JointTargetHead, real_limits

__all__ = [
    "OPSET",
    "ExportModules",
    "JointTargetHead",
    "ParityError",
    "StreamingDecoder",
    "export_checkpoint",
    "export_checkpoint_file",
    "real_limits",
]
