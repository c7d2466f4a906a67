"""Which torch device a name means on this machine, refused by name when the machine lacks it."""

from __future__ import annotations

import os

import torch

from motion_vqvae.errors import DeviceUnavailable, InvalidValue


def local_rank() -> int:
    """The GPU index this process should use (``LOCAL_RANK``; 0 for a plain process)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(name: str) -> torch.device:
    """``auto`` and a bare ``cuda`` mean this process's GPU (torchrun's ``LOCAL_RANK``, else 0); a device
    this machine lacks is refused by name here, before anything is built on it."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidValue(f"device {name!r} is not a torch device (use auto, cpu, cuda, cuda:0)") from exc
    if device.type == "cuda":
        device = torch.device("cuda", local_rank() if device.index is None else device.index)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.index >= count:
            listed = f" (cuda:0 to cuda:{count - 1})" if count else ""
            raise DeviceUnavailable(
                f"device {name!r}: {device} does not exist, this machine has {count} CUDA device(s)"
                f"{listed}; set device=auto or cpu (--set device=cpu)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"device {name!r}: no MPS device on this machine; set device=auto or cpu")
    return device
