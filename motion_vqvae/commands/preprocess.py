"""Preprocess motion files once into a dataset cache that train_vqvae.py reads without parsing anything.

    python scripts/preprocess.py --motion_file ../shared/data/g1_moves --out data/g1_cache
    python scripts/train_vqvae.py --motion_file data/g1_cache --out runs/g1 --time-budget 15

Reads, validates, repairs, resamples, mirrors (and speed-augments) and featurises every file in parallel,
into float32 memory-mapped shards, a clip index (with the validation split), the normaliser statistics and
a hash of the settings. Pass the --set values you will train with: a run whose settings would make other
features (fps, augmentation, split, ...) is refused by the cache, naming the keys.
"""

from __future__ import annotations

import argparse
import logging
import time

from motion_vqvae.cli import cli_main, setup_logging
from motion_vqvae.commands.train import add_config_arguments, path_values
from motion_vqvae.config_loader import ConfigLoader

log = logging.getLogger("preprocess")


def build_parser() -> argparse.ArgumentParser:
    from motion_vqvae.training.preprocess import default_workers

    parser = argparse.ArgumentParser(
        prog="preprocess", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--motion_file", "--motion-file", required=True, help="motion file, directory or glob (NPY/PKL/CSV)"
    )
    parser.add_argument("--out", required=True, help="cache directory to write")
    add_config_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"worker processes (default: min(cpus, 8) = {default_workers()})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cache in OUT")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    config = ConfigLoader(args.config, overrides=args.set, values=path_values(args)).config
    from motion_vqvae.training.preprocess import preprocess

    started = time.monotonic()
    cache = preprocess(args.motion_file, config, args.out, workers=args.workers, overwrite=args.overwrite)
    seconds = time.monotonic() - started
    val = cache.validation_lengths()
    print(
        f"cache: {cache.path} ({len(cache.training_clips())} training clip versions, {len(val)} validation "
        f"clips, {cache.num_frames} feature frames in {len(cache.index['shards'])} shard(s)) in "
        f"{seconds:.1f} s on {args.workers} worker(s)\n"
        f"next: python scripts/train_vqvae.py --motion_file {cache.path} --out runs/NAME "
        + " ".join(f"--set {s}" for s in args.set)
    )
    return 0
