"""Export a checkpoint for the robot: ONNX decoders/encoder, codebook and a hash-checked manifest.

    python scripts/export_onnx.py --checkpoint runs/g1/checkpoints/best.pt --out exports/g1

Exits 1, leaving nothing at ``--out``, when onnxruntime disagrees with torch on real clips; a user error
(missing checkpoint, existing ``--out``, bad flag) is one ``error:`` line and exit 2. ``--overwrite``
replaces an export only: an ``--out`` that is, holds or lies inside the checkpoint's run, or that holds
anything but one export's files, is refused and nothing is deleted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from motion_vqvae.cli import cli_main
from motion_vqvae.export import ParityError, export_checkpoint_file
from motion_vqvae.prior.export import prior_extra
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.tracking.export import tracker_extra


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a .pt written by train_vqvae.py")
    parser.add_argument("--out", type=Path, required=True, help="export directory to create")
    parser.add_argument(
        "--motion_file", default=None, help="clips for the parity check (default: the checkpoint's)"
    )
    parser.add_argument("--prior", type=Path, help="a prior checkpoint trained on this tokenizer's tokens")
    parser.add_argument("--tracker", type=Path, help="a physics tracker checkpoint (train_tracker.py)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing export (a folder of one export only)"
    )
    parser.add_argument(
        "--safety-scale",
        type=float,
        default=1.0,
        help="scale the robot YAML's safety velocity/acceleration limits down, in (0, 1] (default 1)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        manifest = export_checkpoint_file(  # loads the checkpoint once --out is checked and claimed
            args.checkpoint,
            args.out,
            Tokenizer.load,
            motion_file=args.motion_file,
            overwrite=args.overwrite,
            safety_scale=args.safety_scale,
            extras=[
                *([prior_extra(args.prior)] if args.prior else []),
                *([tracker_extra(args.tracker)] if args.tracker else []),
            ],
        )
    except ParityError as exc:  # not the user's input: the export itself is wrong
        print(f"error: export failed its parity check: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {', '.join(manifest['files'])}")
    print(f"parity: {manifest['parity']}")
    return 0
