"""Where the wrapper and the batched decoder get a tokenizer's token structure: what its file stores.

A checkpoint and an export manifest both hold ``token_spec`` (``sim2real.token_spec.TokenSpec.to_dict``);
the token-space code reads it from there and never re-derives it from model internals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.token_spec import TokenSpec


def stored_token_spec(data: dict[str, Any], source: str) -> TokenSpec:
    """The TokenSpec a checkpoint state or a manifest stores (``token_spec``); ``source`` names the file."""
    if "token_spec" not in data:
        raise KeyError(f"{source}: no 'token_spec'; re-train or re-export with this version of motion-vqvae")
    return TokenSpec.from_dict(data["token_spec"], source=f"{source}: token_spec")


def checkpoint_token_spec(path: str | Path) -> TokenSpec:
    """The token structure of a training checkpoint (read with ``weights_only=True``)."""
    from motion_vqvae.training.checkpoint import load_checkpoint

    return stored_token_spec(load_checkpoint(path), str(path))
