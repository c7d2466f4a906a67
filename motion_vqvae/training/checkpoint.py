"""Self-describing checkpoints: written atomically, readable with ``torch.load(weights_only=True)``.

A checkpoint holds everything needed to rebuild and resume: model weights and hyper-parameters, quantizer
buffers (inside the model state), optimizer and scheduler state, every RNG state, the iteration, the
resolved config, the feature layout with its normalization, and the joint map. Only tensors and plain
Python containers go in, so loading never needs to unpickle arbitrary objects. A sha256 of the content
travels inside (``sha256``, format 2), so a checkpoint with a flipped byte is refused instead of resumed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motion_vqvae.errors import InvalidValue, MissingPath
from motion_vqvae.training.nonfinite import check_finite_state

FORMAT_VERSION = 2  # 2: the content's sha256 is stored under "sha256"
logger = logging.getLogger(__name__)


def state_digest(state: Any) -> str:
    """sha256 over every tensor's bytes, dtype and shape and every plain value, in a fixed order."""
    digest = hashlib.sha256()
    todo = [state]
    while todo:
        item = todo.pop()
        if isinstance(item, torch.Tensor):
            flat = item.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{flat.dtype}{tuple(item.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy())
        elif isinstance(item, dict):
            keys = sorted(item, key=repr)
            digest.update(f"D{keys!r}".encode())
            todo.extend(item[k] for k in reversed(keys))
        elif isinstance(item, (list, tuple)):
            digest.update(f"{type(item).__name__}{len(item)}".encode())
            todo.extend(reversed(item))
        else:
            digest.update(f"{type(item).__name__}:{item!r}".encode())
    return digest.hexdigest()


def _remove_stale_temp_files(path: Path) -> None:
    """Temp files of writes that were killed before their rename (never read; only left over)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temp file in the same folder, then rename: a killed run never leaves half a file.

    A state holding a NaN or an infinity is refused (NonFiniteError) before anything is written, so a
    diverged run keeps its last good checkpoint instead of replacing it with one that decodes garbage.
    """
    path = Path(path)
    check_finite_state(state, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(path)
    payload = {"format_version": FORMAT_VERSION, **state}
    payload["sha256"] = state_digest(payload)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely (``weights_only=True``) and check that it is one of ours."""
    return read_checkpoint(path, map_location)[0]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], str]:
    """:func:`load_checkpoint` and the file's sha256, from one read of the file (what an export's manifest
    records as ``checkpoint_sha256``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"checkpoint {path} does not exist; train first (scripts/train_vqvae.py)")
    raw = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise InvalidValue(
            f"checkpoint {path} could not be read ({exc}); is it truncated or not a .pt file?"
        ) from exc
    if not isinstance(state, dict) or "model" not in state or "format_version" not in state:
        raise InvalidValue(
            f"checkpoint {path} is not a motion-vqvae checkpoint (missing 'model'/'format_version')"
        )
    if state["format_version"] > FORMAT_VERSION:
        raise InvalidValue(
            f"checkpoint {path} has format {state['format_version']}, "
            f"newer than this code ({FORMAT_VERSION}); "
            "upgrade motion-vqvae"
        )
    stored = state.pop("sha256", None)
    if stored is None and state["format_version"] >= 2:
        raise InvalidValue(f"checkpoint {path} has lost its checksum; it is corrupted, use another one")
    if stored is None:
        logger.warning("checkpoint %s predates checksums (format 1); loading it unverified", path)
    elif stored != state_digest(state):
        raise InvalidValue(
            f"checkpoint {path} is corrupted: its content does not match the sha256 saved with it (a changed "
            "byte on disk or in a copy). Resume from another checkpoint (best.pt or last.pt) or retrain."
        )
    return state, hashlib.sha256(raw).hexdigest()


def check_model_shapes(
    factory: Callable[..., torch.nn.Module],
    hparams: Mapping[str, Any],
    weights: Mapping[str, Any],
    source: str | Path,
) -> None:
    """Refuse ``hparams`` whose model would not hold exactly the stored ``weights``, before allocating it.

    A checkpoint's hyper-parameters say how big a model to build; its tensors say how big it really is.
    Building from the hyper-parameters first lets a small crafted file (``width: 5000``, checksum
    recomputed) allocate gigabytes before ``load_state_dict`` notices. The model is therefore built on the
    ``meta`` device (shapes only, no memory) and compared with the stored tensors; only then may the caller
    build it for real.
    """
    if not isinstance(hparams, Mapping) or not isinstance(weights, Mapping):
        raise InvalidValue(
            f"checkpoint {source}: 'model_hparams' and 'model' must be mappings; it is corrupted"
        )
    try:
        with torch.device("meta"):
            skeleton = factory(**hparams)
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidValue(
            f"checkpoint {source}: its model_hparams do not describe a model ({exc}); it is corrupted"
        ) from exc
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in weights.items()}
    wrong = [
        f"{k}: model_hparams make {expected.get(k, 'no tensor')}, stored {stored.get(k, 'none')}"
        for k in sorted(expected.keys() | stored.keys())
        if expected.get(k) != stored.get(k)
    ]
    if wrong:
        shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
        raise InvalidValue(
            f"checkpoint {source}: model_hparams disagree with the stored tensors ({shown}); the file is "
            "corrupted or crafted, nothing was built from it: use another checkpoint"
        )


def capture_rng_states(device: torch.device | None = None) -> dict[str, Any]:
    """Every RNG that training touches, as CPU tensors and plain types (weights_only-safe).

    The CUDA generator saved is the training device's alone (``cuda_device``): under torchrun every rank's
    GPU generator is seeded and advanced alike, so one state resumes any number of GPUs.
    """
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.as_tensor(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _to_lists(random.getstate()),
    }
    if device is not None and device.type == "cuda":
        states["cuda_device"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore :func:`capture_rng_states`' states (CPU tensors, as ``load_checkpoint`` maps them)."""
    torch.set_rng_state(states["torch"].cpu())
    npst = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if device is not None and device.type == "cuda":
        if "cuda_device" in states:
            torch.cuda.set_rng_state(states["cuda_device"].cpu(), device)
        elif len(states.get("cuda", [])) == torch.cuda.device_count():  # format before cuda_device
            torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value
