"""Train a physics tracking controller (G1Track-v0, PPO) on reference clips.

python scripts/train_tracker.py --motion_file data/g1_moves/M_Move1.csv --out runs/tracker --time-budget 10
python scripts/train_tracker.py --motion_file data/g1_moves/M_Move19.csv \
    --tokenizer runs/g1/checkpoints/best.pt --out runs/tracker_tokens
python scripts/train_tracker.py --motion_file clips/ --fps 30 --out runs/tracker --set num_envs=32 --resume

Writes checkpoints/last.pt, metrics.jsonl, config.yaml and results.json (success_rate, survival_share,
mpjpe_local_mm, root_error_mm, physics, learning_curve) into --out. One torch thread: the MLP is small and the
simulation, which is numpy and MuJoCo, dominates.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from motion_vqvae.cli import cli_main, setup_logging
from motion_vqvae.config_loader import parse_overrides
from motion_vqvae.tracking.config import TrackerConfig
from motion_vqvae.tracking.train import train_tracker


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--motion_file", required=True, nargs="+", help="clip files, folders or globs (NPY/PKL/CSV)"
    )
    parser.add_argument("--fps", type=float, help="frame rate of files that do not state one")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        nargs="+",
        default=[],
        help="also track each clip as each of these tokenizers decodes it (<clip>_decoded[k])",
    )
    parser.add_argument(
        "--init-from", type=Path, metavar="CKPT", help="start from this tracker's weights (fine-tune)"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument(
        "--time-budget", type=float, metavar="MIN", help="stop training after this many minutes"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="tracker config key")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(1)
    results = train_tracker(
        args.motion_file,
        args.out,
        fps=args.fps,
        overrides=parse_overrides(args.set, TrackerConfig),
        time_budget_min=args.time_budget,
        resume=args.resume,
        overwrite=args.overwrite,
        tokenizers=args.tokenizer,
        init_from=args.init_from,
    )
    shown = {k: results[k] for k in ("success_rate", "survival_share", "mpjpe_local_mm", "root_error_mm")}
    logging.getLogger("train_tracker").info("results: %s", json.dumps(shown))
    return 0
