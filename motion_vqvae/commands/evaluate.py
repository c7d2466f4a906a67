"""Evaluate a tokenizer checkpoint on whole clips.

    python scripts/evaluate.py --checkpoint runs/g1/checkpoints/best.pt \
        --motion_file ../shared/data/g1_moves --out runs/g1/eval

Files are read at their own fps and quaternion order (a meta.json beside a CSV, a PKL's fps key, an NPY
time column); --fps and --quat-order are for files that do not state them, never the checkpoint's, whose
fps is the rate of the clips it was trained on. Clips are then resampled to the tokenizer's rate.

--split test scores exactly the test clips of the checkpoint's run (RUN/split.json), which no training or
selection step saw; --split val and train likewise. --split auto (default) scores the checkpoint's held-out
clips when the folder holds them, else every clip;
--levels K decodes multi-level tokens with their first K levels only.

Writes OUT/metrics.json (means over clips and a per-clip list; "physics": the feasibility of the
reconstructions and of their references, off with --no-physics), PNG plots (worst joints, error over
time, codebook usage, physics) and, with --save-reconstructions, each reconstructed clip as CSV (root_pos,
root_quat xyzw, dof; no header) at the evaluation fps, with a meta.json (fps, joint names) beside them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from motion_vqvae.cli import UserError, add_source_arguments, cli_main, setup_logging


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a .pt file written by train_vqvae.py")
    parser.add_argument(
        "--motion_file", "--motion-file", required=True, help="motion file, directory or glob"
    )
    add_source_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--save-reconstructions", action="store_true", help="write each reconstruction as CSV"
    )
    parser.add_argument(
        "--levels", type=int, help="decode with the first K levels of every part only (default: all)"
    )
    parser.add_argument(
        "--split",
        choices=("auto", "val", "train", "test", "all"),
        default="auto",
        help="clips to score: the train, val or test clips of the checkpoint's run (its split.json; test "
        "is what reports, nothing selects on it), all, or auto (val when the folder holds them, else all); "
        "the output says which",
    )
    parser.add_argument("--clip", help="score this clip alone: its name (or index) in --motion_file")
    parser.add_argument(
        "--no-physics",
        dest="physics",
        action="store_false",
        help="skip the feasibility metrics (metrics.json 'physics': skate, float, support, joint range, "
        "contact-fitted root residual of reconstructions and references) and physics.png",
    )
    args = parser.parse_args(argv)
    setup_logging()
    if not Path(args.checkpoint).is_file():
        raise UserError(
            f"--checkpoint {args.checkpoint} does not exist; train first (scripts/train_vqvae.py)"
        )
    from motion_vqvae.evaluate import evaluate_checkpoint

    summary = evaluate_checkpoint(
        args.checkpoint,
        args.motion_file,
        Path(args.out),
        fps=args.fps,
        quat_order=args.quat_order,
        save_reconstructions=args.save_reconstructions,
        levels=args.levels,
        split=args.split,
        clip=args.clip,
        physics=args.physics,
    )
    brief = {k: v for k, v in summary.items() if k not in ("per_clip", "physics_per_clip")}
    print(json.dumps(brief, indent=2))
    return 0
