"""Sample motion from a prior and write it as a CSV the project's reader loads (and visualize.py shows).

    python scripts/sample_prior.py --prior runs/prior/checkpoints/best.pt --seconds 20 \
        --prompt "a karate chop" --out samples/karate.csv [--prefix clip.csv] [--seed 0]

The CSV has no header, root position, root quaternion (xyzw) and joint angles per row, at the tokenizer's
fps; meta.json beside it records that fps and the joint names. Without --prompt the prior samples
unconditionally; an unseen prompt is embedded with all-MiniLM-L6-v2 and guided like a training caption.
An existing --out is replaced only with --overwrite; a full disk or read-only folder ends in one line
naming the path.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from motion_vqvae.cli import add_source_arguments, cli_main
from motion_vqvae.errors import OutputExists
from motion_vqvae.outputs import claim, environment_errors
from motion_vqvae.prior.generate import generate_motion, write_motion_csv
from motion_vqvae.prior.sampling import LoadedPrior


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prior", required=True, type=Path, help="prior checkpoint (train_prior.py)")
    parser.add_argument("--seconds", required=True, type=float, help="seconds of motion to sample")
    parser.add_argument("--out", required=True, type=Path, help="output .csv")
    parser.add_argument("--prompt", help="text prompt (classifier-free guidance); absent = unconditional")
    parser.add_argument("--prefix", type=Path, help="a motion file (one clip) to continue")
    add_source_arguments(parser)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--temperature", type=float, help="default: the prior's config")
    parser.add_argument("--top-p", type=float, help="default: the prior's config")
    parser.add_argument("--guidance-scale", type=float, help="default: the prior's config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.prior.is_file():
        parser.error(f"--prior: {args.prior} does not exist; train one with scripts/train_prior.py")
    if args.out.suffix.lower() != ".csv":
        parser.error(f"--out must end in .csv, got {args.out}")
    if args.out.exists() and not args.overwrite:
        raise OutputExists(
            f"--out {args.out} already exists; pass --overwrite to replace it, or choose another"
        )
    with environment_errors(args.out), claim(args.out):
        motion, tokens = generate_motion(
            LoadedPrior.load(args.prior),
            args.seconds,
            prompt=args.prompt,
            prefix=args.prefix,
            fps=args.fps,
            quat_order=args.quat_order,
            seed=args.seed,
            temperature=args.temperature,
            top_p=args.top_p,
            guidance_scale=args.guidance_scale,
        )
        write_motion_csv(motion, args.out)
    print(f"wrote {args.out}: {motion.num_frames} frames at {motion.fps} fps from {len(tokens)} tokens")
    return 0
