"""Score a physics tracker on clips (optionally decoded through a tokenizer first).

python scripts/evaluate_tracker.py --tracker motion_vqvae/assets/tracker/tracker.pt \
    --motion_file data/g1_moves/M_Move19.csv --tokenizer runs/g1/checkpoints/best.pt --out runs/track_eval

Writes DIR/results.json (success_rate, survival_share, mpjpe_local_mm, root_error_mm, physics, per_clip),
DIR/tracking.png and DIR/tracking.gif (the simulated G1 beside the reference; no OpenGL needed).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from motion_vqvae.cli import cli_main, setup_logging
from motion_vqvae.tracking.report import evaluate_tracker


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", type=Path, required=True, help="tracker checkpoint (.pt)")
    parser.add_argument(
        "--motion_file", required=True, nargs="+", help="clip files, folders or globs (NPY/PKL/CSV)"
    )
    parser.add_argument("--fps", type=float, help="frame rate of files that do not state one")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer checkpoint: track the decoded clips")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(1)
    results = evaluate_tracker(
        args.tracker, args.motion_file, args.out, fps=args.fps, tokenizer=args.tokenizer
    )
    shown = {k: results[k] for k in ("success_rate", "survival_share", "mpjpe_local_mm", "root_error_mm")}
    logging.getLogger("evaluate_tracker").info("results: %s", json.dumps(shown))
    return 0
