"""Regenerate motion_vqvae/assets/sample_motion.npy (procedural, seeded: the same bytes every run)."""

from __future__ import annotations

import argparse
import logging

from motion_vqvae.data import sample_motion_path
from motion_vqvae.data.sample_motion import write_sample_motion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(sample_motion_path()), help="output .npy path")
    parser.add_argument("--seed", type=int, default=0, help="random seed for phases and headings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    path = write_sample_motion(args.out, seed=args.seed)
    logging.getLogger(__name__).info("wrote %s", path)


if __name__ == "__main__":
    main()
