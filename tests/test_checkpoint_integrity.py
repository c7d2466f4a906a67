"""Checkpoints carry a sha256 of their content: a flipped byte is refused, killed writes leave no temp."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_vqvae.training.checkpoint import load_checkpoint, save_checkpoint, state_digest


def _state() -> dict:
    weights = torch.arange(4096, dtype=torch.float64) * 1.2345
    return {
        "model": {"w": weights, "b": torch.zeros(3, dtype=torch.bfloat16), "flag": torch.tensor(True)},
        "iteration": 7,
        "config": {"lr": 2e-3, "names": ["a", "b"], "pair": (1, 2.5), "none": None},
    }


def test_round_trip_and_flipped_byte_in_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(_state(), path)
    state = load_checkpoint(path)
    assert state_digest(state) == state_digest({"format_version": 2, **_state()})
    data = bytearray(path.read_bytes())
    at = bytes(data).index(np.arange(10, 20, dtype=np.float64).__mul__(1.2345).tobytes())
    data[at + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"last\.pt is corrupted: its content does not match the sha256"):
        load_checkpoint(path)


def test_any_flipped_byte_is_refused_or_harmless(tmp_path: Path) -> None:
    """Across the file: a flip is refused with a message, or it hit bytes that carry no content."""
    path = tmp_path / "ckpt.pt"
    save_checkpoint(_state(), path)
    original = path.read_bytes()
    expected = state_digest(load_checkpoint(path))
    refused = 0
    for at in np.linspace(0, len(original) - 1, 60).astype(int):
        data = bytearray(original)
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
        try:
            assert state_digest(load_checkpoint(path)) == expected, f"byte {at} changed the content silently"
        except ValueError as err:
            assert "ckpt.pt" in str(err)
            refused += 1
    assert refused > 0


def test_interrupted_write_leaves_no_temp_after_the_next_save(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    stale = path.parent / ".last.pt.abc123.tmp"  # what a SIGKILL during torch.save leaves behind
    stale.write_bytes(b"half a checkpoint")
    other = path.parent / ".best.pt.x.tmp"
    other.write_bytes(b"")
    save_checkpoint(_state(), path)
    assert not stale.exists() and other.exists()  # only this checkpoint's leftovers are its to clean
    save_checkpoint(_state(), path.parent / "best.pt")
    assert sorted(os.listdir(path.parent)) == ["best.pt", "last.pt"]
