"""GPU speed options: TF32 matmuls, bf16 autocast (``amp``) and ``torch.compile`` (``compile``).

All three leave the quantizers alone: they compute distances and EMA statistics in float32 whatever the
autocast (see :mod:`motion_vqvae.models.quantizers`) and hold data-dependent code (first-batch seeding),
so only the convolutional encoder and decoder are compiled.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from motion_vqvae.errors import InvalidValue

AMP_MODES = ("none", "bf16")


def enable_tf32(device: torch.device) -> None:
    """TF32 for float32 matmuls and convolutions on CUDA (Ampere and later); a no-op elsewhere."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def check_amp(amp: str, device: torch.device) -> None:
    """ValueError naming the fix when ``amp`` cannot run on ``device``."""
    if amp not in AMP_MODES:
        raise InvalidValue(f"amp: {amp!r} is not one of {list(AMP_MODES)}")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidValue(
            f"amp: bf16 needs a GPU with bfloat16 support ({torch.cuda.get_device_name(device)} has none); "
            "set --set amp=none"
        )


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The forward pass's mixed-precision context: bf16 autocast, or nothing for ``amp: none``."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_convs(model: nn.Module) -> None:
    """Compile the model's encoder and decoder in place (state_dict keys unchanged, checkpoints portable)."""
    for name in ("encoder", "decoder"):
        module = getattr(model, name, None)
        if not isinstance(module, nn.Module):
            raise ValueError(f"compile: the model has no {name} module to compile")
        module.compile()
