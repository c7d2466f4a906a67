"""A causal tokenizer trained in a few seconds on real clips: the one recipe every end-to-end test uses."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_vqvae  # noqa: E402

NB_CODE = 32
TINY = {
    "width": 32,
    "depth": 1,
    "nb_code": NB_CODE,
    "code_dim": 16,
    "output_emb_width": 16,
    "window_size": 16,
    "batch_size": 16,
    "warmup_iter": 2,
    "lr": 3e-3,
    "num_threads": 1,
    "causal": True,
    "quantizer": "ema_reset",  # one stream: the runtime, wrapper and export tests use plain token ids
    "body_parts": None,
}


def set_args(values: dict[str, object]) -> list[str]:
    """``--set key=value`` arguments, one pair per entry of ``values``."""
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


def tiny_sets(iters: int, **extra: object) -> list[str]:
    """``--set key=value`` arguments for train_vqvae.py: the tiny config, ``iters`` steps, overrides."""
    return set_args({**TINY, "total_iter": iters, "eval_every": iters, "save_every": iters, **extra})


def train_tiny_tokenizer(out: Path, motion_file: str, iters: int = 40, **extra: object) -> Path:
    """Train ``iters`` iterations into ``out``; returns the checkpoint path."""
    args = ["--motion_file", motion_file, "--out", str(out), *tiny_sets(iters, **extra)]
    assert train_vqvae.main(args) == 0
    return out / "checkpoints" / "last.pt"
