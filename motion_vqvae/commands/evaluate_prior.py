"""Evaluate a motion-token prior on held-out clips: bits per token against unigram/bigram baselines, and
motion completion (best of 8 sampled 2-s continuations of a 2-s prefix) against repeating the last token
and sampling the bigram model.

    python scripts/evaluate_prior.py --prior runs/prior/checkpoints/best.pt \
        --motion_file ../shared/data/g1_moves --out runs/prior/eval

Writes OUT/metrics.json (nll_bits_per_token, unigram_bits_per_token, bigram_bits_per_token,
completion_minade_mm, completion_minade_repeat_mm, completion_minade_bigram_mm, per clip) and
OUT/{bits,completion}.png. Clips: --split (default auto: the tokenizer run's test clips found in
--motion_file, which neither the tokenizer nor the prior trained or selected on; else its validation clips;
else all).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from motion_vqvae.cli import add_source_arguments, cli_main
from motion_vqvae.prior.evaluate import COMPLETION_KEYS, SPLITS, evaluate_prior
from motion_vqvae.prior.sampling import LoadedPrior


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prior", required=True, type=Path, help="prior checkpoint (train_prior.py)")
    parser.add_argument(
        "--motion_file", "--motion-file", required=True, help="motion file, directory or glob"
    )
    add_source_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--samples", type=int, default=8, help="sampled continuations per clip (best counts)")
    parser.add_argument(
        "--windows", type=int, default=4,
        help="completion windows per clip (back-to-back prefix + horizon seconds from the clip's start)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="auto",
        help="clips to score: the tokenizer run's test clips (split.json; neither model trained or selected "
        "on them), its val clips, or all; auto: test where the folder holds them, else val, else all",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.prior.is_file():
        parser.error(f"--prior: {args.prior} does not exist; train one with scripts/train_prior.py")
    metrics = evaluate_prior(
        LoadedPrior.load(args.prior),
        args.motion_file,
        args.fps,
        args.out,
        quat_order=args.quat_order,
        samples=args.samples,
        seed=args.seed,
        windows=args.windows,
        split=args.split,
    )
    keys = ("nll_bits_per_token", "bigram_bits_per_token", "unigram_bits_per_token")
    for key in (*keys, "nll_bits_per_level", "bigram_bits_per_level", *COMPLETION_KEYS):
        value = metrics[key]
        print(f"{key}: {[round(v, 2) for v in value] if isinstance(value, list) else value}")
    return 0
