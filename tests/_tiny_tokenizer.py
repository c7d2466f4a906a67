"""A causal tokenizer trained in a few seconds on real clips, shared by the token-space RL tests."""

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
}


def train_tiny_tokenizer(out: Path, motion_file: str, iters: int = 40) -> Path:
    """Train ``iters`` iterations into ``out``; returns the checkpoint path."""
    values = {**TINY, "total_iter": iters, "eval_every": iters, "save_every": iters}
    sets = [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]
    assert train_vqvae.main(["--motion_file", motion_file, "--out", str(out), *sets]) == 0
    return out / "checkpoints" / "last.pt"
